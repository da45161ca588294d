//! Every operation the server answers, one line each, read by `super::document` into OpenAPI.
//!
//! A line is `METHOD PATH | TAG | WHO | SUMMARY | PARAMETERS | BODY | RESPONSES`:
//! - PATH names its parameters `{name}` (a string) or `{name:int}` (an integer).
//! - WHO: `none` (anonymous), `optional` (anonymous allowed, credentials checked when sent), `member`
//!   (bearer token or session cookie), `token` (a bearer token only), `client` (OAuth client
//!   authentication), `signed` (the URL's signature).
//! - PARAMETERS: `-`, or `q:name:TYPE` (query) and `h:Name:TYPE` (header) separated by spaces; a
//!   name ending in `!` is required; TYPE is `int`, `str`, `bool` or `str=a/b/c` (one of those).
//! - BODY: `-`, or alternatives separated by `,`: `json:Schema`, `form:Schema` (URL-encoded),
//!   `multipart:Schema`, `raw` (application/octet-stream) or `raw=MEDIA/TYPE`; a leading `?` makes
//!   the body optional.
//! - RESPONSES: `CODE:KIND` separated by spaces. KIND is a schema name (JSON), `ok`
//!   (`{"httpStatusCode": 200}`), `str` / `str?` (a JSON string, `?`: or null), `-` (no body),
//!   `bytes` (a file, any type), `html`, `text`; a bare CODE is the JSON error body of SPEC §4.
//!
//! Some answers are added to every operation by `super::document` rather than written here: 401 when
//! a caller is needed, 403 on authenticated changes (read-only tokens, the CSRF check), 400 when
//! there are parameters or a body, 404 when the path has parameters, 413 and 415 with a JSON body,
//! and 503 everywhere (the database or the storage cannot be reached).

pub(super) const OPERATIONS: &str = r#"
GET /healthz | Health | none | Liveness: the database and the storage answer | - | - | 200:Status
GET /readyz | Health | none | Readiness: started, not stopping, database and storage answer | - | - | 200:Status
GET /api/openapi.json | Health | none | This OpenAPI document | - | - | 200:Document
GET /api/docs | Health | none | This document as a web page | - | - | 200:html
GET / | Web UI | none | The web UI (one page; its scripts call the API with the session cookie) | - | - | 200:html 304:-
GET /login | Web UI | none | The web UI's login page; returns to next (a path on this server) after login | q:next:str | - | 200:html 304:-
GET /ui/{file} | Web UI | none | A script, stylesheet or icon of the web UI | h:If-None-Match:str | - | 200:bytes 304:-

POST /api/v1/auth/login | Sessions | none | Log in; sets the session cookie | - | json:Login | 200:Member 401 403 429
POST /api/v1/auth/logout | Sessions | member | End the session of the cookie and clear it | - | - | 200:ok
GET /api/v1/auth/me | Sessions | member | Describe the caller | - | - | 200:Me

POST /api/v1/members | Members | member | Create a member (admin) | - | json:MemberCreate | 201:Member 403 409
GET /api/v1/members | Members | member | List members (admin) | - | - | 200:MemberList 403
PATCH /api/v1/members/{username} | Members | member | Change, disable or enable a member, or set its password (admin) | - | json:MemberUpdate | 200:Member 409
DELETE /api/v1/members/{username} | Members | member | Delete a member (admin) | - | - | 200:ok 409
POST /api/v1/me/password | Members | member | Change one's own password | - | json:PasswordChange | 200:ok 429

POST /api/v1/me/tokens | Personal tokens | member | Create a personal token (shown once) | - | json:TokenCreate | 201:TokenCreated
GET /api/v1/me/tokens | Personal tokens | member | List the caller's personal tokens | - | - | 200:TokenList
DELETE /api/v1/me/tokens/{id:int} | Personal tokens | member | Revoke one of the caller's personal tokens | - | - | 200:ok

POST /api/v1/spaces | Spaces | member | Create a space (admin) | - | json:SpaceCreate | 201:Space 409
GET /api/v1/spaces | Spaces | member | List the spaces the caller can see | - | - | 200:SpaceList
GET /api/v1/spaces/{space} | Spaces | member | Read a space | - | - | 200:Space
PATCH /api/v1/spaces/{space} | Spaces | member | Rename a space or change its quota (admin) | - | json:SpaceUpdate | 200:Space
DELETE /api/v1/spaces/{space} | Spaces | member | Delete a space with its files (admin) | - | - | 200:ok
POST /api/v1/spaces/{space}/members | Spaces | member | Add a member to a space (admin) | - | json:Username | 200:Space
DELETE /api/v1/spaces/{space}/members/{username} | Spaces | member | Remove a member from a space (admin) | - | - | 200:ok

POST /api/v1/channels | Chat | member | Create a channel; the caller is a member | - | json:ChannelCreate | 201:Channel
GET /api/v1/channels | Chat | member | List the channels the caller can see | - | - | 200:ChannelList
GET /api/v1/channels/{channel} | Chat | member | Read a channel | - | - | 200:Channel
POST /api/v1/channels/{channel}/members | Chat | member | Add a member to a channel | - | json:Username | 200:Channel
POST /api/v1/channels/{channel}/messages | Chat | member | Post a message, with attachments | - | json:MessageCreate | 201:Message 409
GET /api/v1/channels/{channel}/messages | Chat | member | List a channel's messages, oldest first | q:limit:int q:cursor:str | - | 200:MessageList
DELETE /api/v1/channels/{channel}/messages/{message} | Chat | member | Delete a message (its author or an admin); its attachments are released | - | - | 204:-
POST /api/http/chats/messages/send-message | Chat | member | Post a message, Space-style | - | json:SendMessage | 200:Message 404 409

POST /api/http/projects | Projects | member | Create a project; the caller is a member | - | json:ProjectCreate | 201:Project 409
GET /api/http/projects | Projects | member | List the projects the caller can see | - | - | 200:ProjectList
POST /api/http/projects/{project}/planning/issues | Projects | member | Open an issue | - | json:IssueCreate | 201:Issue 409
GET /api/http/projects/{project}/planning/issues | Projects | member | List a project's issues by number | q:$skip:int q:$top:int | - | 200:IssuePage
GET /api/http/projects/{project}/planning/issues/{issue} | Projects | member | Read an issue | - | - | 200:Issue
DELETE /api/http/projects/{project}/planning/issues/{issue} | Projects | member | Delete an issue (its author or an admin); its attachments are released | - | - | 204:-
POST /api/http/projects/{project}/planning/issues/{issue}/attachments | Projects | member | Link attachments to an issue | - | json:IssueAttachments | 200:Issue 409

POST /uploads | Attachments | member | Upload a file as a new attachment; answers its id | q:name!:str q:spaceMediaType:str=issue-image-attachment/chat-image-attachment/chat-video-attachment h:Repr-Digest:str h:Content-Digest:str h:X-Checksum-SHA256:str | raw | 200:text 413 422 507
POST /api/v1/messages/{message:int}/attachments | Attachments | member | Upload files onto one's own message (multipart, parts named files) | - | multipart:MessageFiles | 200:MessageFilesResult 413 415 422 507
GET /api/v1/attachments/{id:int} | Attachments | member | Read an attachment's metadata | - | - | 200:Attachment
DELETE /api/v1/attachments/{id:int} | Attachments | member | Delete an attachment (its uploader or an admin) | - | - | 200:ok
GET /api/v1/attachments/{id:int}/preview | Attachments | optional | A smaller image of an image or video attachment | q:size:str=64/256/1024 q:k:str h:Range:str h:If-None-Match:str | - | 200:bytes 206:bytes 304:- 409 416
DELETE /api/v1/attachments/{id:int}/public-link | Attachments | member | Make an attachment private again; its old link stops working | - | - | 200:ok
GET /api/v1/attachments/{id:int}/{name} | Attachments | member | Download an attachment by its file name | h:Range:str h:If-None-Match:str h:If-Range:str | - | 200:bytes 206:bytes 304:- 403 409 416
GET /api/http/uploads/chat/public-url/{channel}/{message}/{id} | Attachments | member | Make an attachment of a message public; answers its link | - | - | 200:str 409
GET /d/{id} | Attachments | optional | Download an attachment: a reader's, or anyone's with its public-link token k | q:k:str h:Range:str h:If-None-Match:str h:If-Range:str | - | 200:bytes 206:bytes 304:- 403 409 416

POST /api/v1/share-links | Share links | member | Share an attachment or a storage file by link | - | json:ShareLinkCreate | 201:ShareLink 404 409
GET /api/v1/share-links | Share links | member | List the caller's share links (every one for an admin) | - | - | 200:ShareLinkList
DELETE /api/v1/share-links/{id:int} | Share links | member | Revoke a share link | - | - | 200:ok
GET /s/{token} | Share links | none | Download the file of a share link | h:X-Share-Password:str h:Range:str h:If-None-Match:str h:If-Range:str | - | 200:bytes 206:bytes 304:- 401 403 409 410 416 429
POST /s/{token} | Share links | none | Download the file of a share link with the password of its form | - | form:SharePassword | 200:bytes 401 403 409 410 415 429

GET /api/v1/limits | Workspace storage | member | What the caller may upload: file size limit, quotas and usage | - | - | 200:Limits
GET /api/v1/space/{space}/storage | Workspace storage | member | List a directory of a space | q:dir:str q:limit:int q:cursor:str | - | 200:EntryList 409
GET /api/v1/space/{space}/storage/{path} | Workspace storage | member | Download a file of a space | h:Range:str h:If-None-Match:str h:If-Range:str | - | 200:bytes 206:bytes 304:- 409 416
DELETE /api/v1/space/{space}/storage/{path} | Workspace storage | member | Delete a file, or a directory with recursive=true | q:recursive:bool | - | 200:ok 409
GET /api/v1/space/{space}/storage/{path}/meta | Workspace storage | member | Read a file's or a directory's entry | - | - | 200:Entry
POST /api/v1/space/{space}/storage/{path}/upload | Workspace storage | member | Upload a file: raw bytes, a form, a URL, a data URL, or declare a two-stage upload | h:Repr-Digest:str h:Content-Digest:str h:X-Checksum-SHA256:str | ?raw,multipart:StorageForm,json:StorageUpload | 200:StorageUploaded 201:Entry 409 413 415 422 429 502 504 507
POST /api/v1/space/{space}/storage/{path}/move | Workspace storage | member | Move or rename a file or a directory | - | json:Move | 200:Entry 409
GET /api/v1/space/{space}/storage/{path}/preview | Workspace storage | member | A smaller image of an image or video file of a space | q:size:str=64/256/1024 h:If-None-Match:str | - | 200:bytes 304:- 409
PUT /api/v1/storage-uploads/{id} | Workspace storage | signed | Send the bytes of a two-stage upload to its signed URL | q:expires!:int q:signature!:str | raw | 200:Entry 201:Entry 403 409 410 413 422 507

OPTIONS /api/v1/tus | Resumable uploads | none | tus capabilities | - | - | 204:-
POST /api/v1/tus | Resumable uploads | member | Create a resumable upload, optionally with its first bytes | h:Tus-Resumable!:str h:Upload-Length:int h:Upload-Metadata:str h:Upload-Defer-Length:str | ?raw=application/offset+octet-stream | 201:- 404 409 412 413 415 507
OPTIONS /api/v1/tus/{id} | Resumable uploads | none | tus capabilities | - | - | 204:-
HEAD /api/v1/tus/{id} | Resumable uploads | member | The offset of a resumable upload | h:Tus-Resumable!:str | - | 200:- 412
PATCH /api/v1/tus/{id} | Resumable uploads | member | Send the next chunk of a resumable upload | h:Tus-Resumable!:str h:Upload-Offset!:int h:Upload-Checksum:str | raw=application/offset+octet-stream | 204:- 409 412 413 415 422 423 460 507
DELETE /api/v1/tus/{id} | Resumable uploads | member | Terminate a resumable upload | h:Tus-Resumable!:str | - | 204:- 412 423

POST /oauth/token | OAuth | client | Get tokens: client credentials, authorization code or refresh token | - | form:TokenRequest | 200:OAuthTokens 400:OAuthError 401:OAuthError 415:OAuthError 429:OAuthError
GET /oauth/auth | OAuth | member | The consent page of the authorization code flow | q:response_type:str q:client_id:str q:redirect_uri:str q:scope:str q:state:str q:code_challenge:str q:code_challenge_method:str | - | 200:html 303:- 400:html 401:html+Error 403:html
POST /oauth/auth | OAuth | member | The member's decision on the consent page; redirects to the application | - | form:Consent | 303:- 400:html 401:html+Error 403:html+Error

POST /api/http/applications | Applications | member | Register an application (admin) | - | json:AppCreate | 201:App 409
GET /api/http/applications/paged | Applications | member | List applications | q:$skip:int q:$top:int q:name:str q:withArchived:bool q:withManaged:bool q:owner:str q:ordering:str=name/created | - | 200:AppPage
POST /api/http/applications/error-message | Applications | token | Set or clear the calling application's error message | - | json:ErrorMessage | 200:ok
POST /api/http/applications/report-application-as-healthy | Applications | token | Record that the calling application is healthy | - | - | 200:ok
GET /api/http/applications/{app} | Applications | member | Read an application | - | - | 200:App
PATCH /api/http/applications/{app} | Applications | member | Change an application | - | json:AppUpdate | 200:App 409
DELETE /api/http/applications/{app} | Applications | member | Delete (archive or uninstall) an application | - | - | 200:ok 409
POST /api/http/applications/{app}/force-remove | Applications | member | Archive an application whose uninstall payload failed | - | - | 200:ok 409
POST /api/http/applications/{app}/restore | Applications | member | Restore an archived application | - | - | 200:ok 409
GET /api/http/applications/{app}/last-client-credentials-access | Applications | member | When and by what the client credentials were last used | - | - | 200:AccessRecord

GET /api/http/applications/{app}/bearer-token | Application secrets | member | The bearer token sent to the application's endpoint | - | - | 200:str?
GET /api/http/applications/{app}/public-keys | Application secrets | member | The JWKS (as a JSON string) of the server's payload-signing key | - | - | 200:str
GET /api/http/applications/{app}/client-secret | Application secrets | member | The application's client secret | - | - | 200:str?
POST /api/http/applications/{app}/client-secret/regenerate | Application secrets | member | Make a new client secret | - | - | 200:ok
GET /api/http/applications/{app}/signing-key | Application secrets | member | The application's payload signing key (hex) | - | - | 200:str?
POST /api/http/applications/{app}/signing-key/regenerate | Application secrets | member | Make a new signing key; the old one signs for 24 more hours | - | - | 200:ok
GET /api/http/applications/{app}/verification-token | Application secrets | member | The application's verification token | - | - | 200:str?
POST /api/http/applications/{app}/verification-token/regenerate | Application secrets | member | Make a new verification token | - | - | 200:ok

POST /api/http/applications/{app}/permanent-tokens | Application tokens | member | Create a permanent token (shown once) | - | json:PermanentTokenCreate | 201:PermanentTokenCreated
GET /api/http/applications/{app}/permanent-tokens | Application tokens | member | List permanent tokens | q:$skip:int q:$top:int | - | 200:PermanentTokenPage
DELETE /api/http/applications/{app}/permanent-tokens/current | Application tokens | token | Delete the permanent token making this call | - | - | 200:ok
PATCH /api/http/applications/{app}/permanent-tokens/{token} | Application tokens | member | Change a permanent token | - | json:PermanentTokenUpdate | 200:ok
DELETE /api/http/applications/{app}/permanent-tokens/{token} | Application tokens | member | Delete a permanent token | - | - | 200:ok

GET /api/http/applications/parameters | Application parameters | token | The calling application's parameters | - | - | 200:ParameterList
GET /api/http/applications/parameters/profile | Application parameters | token | The profile parameters of the member behind the token | - | - | 200:ParameterList
GET /api/http/applications/parameters/profile/{key} | Application parameters | token | Read a profile parameter | - | - | 200:str
PATCH /api/http/applications/parameters/profile/{key} | Application parameters | token | Set a profile parameter | - | json:ParameterValue | 200:ok
DELETE /api/http/applications/parameters/profile/{key} | Application parameters | token | Delete a profile parameter | - | - | 200:ok
GET /api/http/applications/parameters/{key} | Application parameters | token | Read an application parameter | - | - | 200:str
PATCH /api/http/applications/parameters/{key} | Application parameters | token | Set an application parameter | - | json:ParameterValue | 200:ok
DELETE /api/http/applications/parameters/{key} | Application parameters | token | Delete an application parameter | - | - | 200:ok

GET /api/http/applications/authorizations/authorized-applications | Application rights | member | Applications holding a granted right in a context | q:contextIdentifier!:str | - | 200:AppList
GET /api/http/applications/{app}/authorizations/authorized-contexts | Application rights | member | Contexts where an application holds a granted right | - | - | 200:ContextList
GET /api/http/applications/{app}/authorizations/authorized-rights | Application rights | member | An application's rights in a context | q:contextIdentifier!:str | - | 200:RightList
PATCH /api/http/applications/{app}/authorizations/authorized-rights | Application rights | member | Grant, deny or request rights in a context | - | json:RightsUpdate | 200:ok
DELETE /api/http/applications/{app}/authorizations/authorized-rights | Application rights | member | Forget an application's rights in a context | q:contextIdentifier!:str | - | 200:ok
PATCH /api/http/applications/{app}/authorizations/authorized-rights/request-rights | Application rights | member | Request rights in a context | - | json:RightsRequest | 200:ok
GET /api/http/applications/{app}/authorizations/required-rights | Application rights | member | The rights an application says it needs | - | - | 200:RightList
PATCH /api/http/applications/{app}/authorizations/required-rights | Application rights | member | Change the rights an application says it needs | - | json:RequiredRightsUpdate | 200:ok

POST /api/http/applications/{app}/gpg-keys | Application keys | member | Add a GPG public key | - | json:KeyCreate | 201:GpgKey 409 413
GET /api/http/applications/{app}/gpg-keys | Application keys | member | List GPG keys | - | - | 200:GpgKeyList
PATCH /api/http/applications/{app}/gpg-keys/{fingerprint} | Application keys | member | Revoke a GPG key | - | json:KeyRevoke | 200:ok
DELETE /api/http/applications/{app}/gpg-keys/{fingerprint} | Application keys | member | Delete a GPG key | - | - | 200:ok
POST /api/http/applications/{app}/ssh-keys | Application keys | member | Add an SSH public key | - | json:KeyCreate | 201:SshKey 409 413
GET /api/http/applications/{app}/ssh-keys | Application keys | member | List SSH keys | - | - | 200:SshKeyList
DELETE /api/http/applications/{app}/ssh-keys/{fingerprint} | Application keys | member | Delete an SSH key | - | - | 200:ok

PATCH /api/http/applications/unfurls/domains | Unfurls | token | Declare the domains the calling application previews | - | json:Domains | 200:ok
PATCH /api/http/applications/unfurls/patterns | Unfurls | token | Declare the external-id prefixes the calling application previews | - | json:Patterns | 200:ok
GET /api/http/applications/unfurls/queue | Unfurls | token | Links waiting for a preview | q:batchSize!:int q:fromEtag:int | - | 200:UnfurlQueue
POST /api/http/applications/unfurls/queue/content | Unfurls | token | Post previews of queued links | - | json:UnfurlContent | 200:UnfurlResults
POST /api/http/applications/unfurls/queue/request-external-auth | Unfurls | token | Ask a member to authenticate with the application | - | json:ExternalAuthRequest | 200:ok 413
POST /api/http/applications/unfurls/queue/reset-external-auth-requests | Unfurls | token | Forget a member's authentication requests | - | json:ExternalAuthReset | 200:ok
POST /api/http/applications/{app}/unfurl-domains/authorize | Unfurls | member | Approve or reject declared domains (admin) | - | json:AuthorizeDomains | 200:ok
GET /api/http/applications/{app}/unfurl-domains | Unfurls | member | An application's domains and their status | - | - | 200:UnfurlDomainList
POST /api/http/applications/{app}/unfurl-patterns/authorize | Unfurls | member | Approve or reject declared prefixes (admin) | - | json:AuthorizePatterns | 200:ok
GET /api/http/applications/{app}/unfurl-patterns | Unfurls | member | An application's prefixes and their status | - | - | 200:UnfurlPatternList

PATCH /api/http/applications/ui-extensions | UI extensions | token | Set the calling application's UI extensions in a context | - | json:UiExtensionsSet | 200:ok
GET /api/http/applications/{app}/ui-extensions | UI extensions | member | An application's UI extensions per context | q:contextIdentifier:str | - | 200:UiExtensionsList
PATCH /api/http/applications/{app}/ui-extensions/disable-for-everybody | UI extensions | member | Disable an application's UI extensions in a context (admin) | - | json:Context | 200:ok
PATCH /api/http/applications/{app}/ui-extensions/disable-for-me | UI extensions | member | Disable an application's UI extensions for oneself | - | json:Context | 200:ok
PATCH /api/http/applications/{app}/ui-extensions/enable-for-everybody | UI extensions | member | Enable an application's UI extensions in a context (admin) | - | json:Context | 200:ok
PATCH /api/http/applications/{app}/ui-extensions/enable-for-me | UI extensions | member | Enable an application's UI extensions for oneself | - | json:Context | 200:ok

POST /api/http/applications/{app}/webhooks | Webhooks | member | Create a webhook | - | json:WebhookCreate | 201:Webhook 413
GET /api/http/applications/{app}/webhooks | Webhooks | member | List webhooks | q:withArchived:bool q:query:str q:$skip:int q:$top:int | - | 200:WebhookPage
POST /api/http/applications/{app}/webhooks/{webhook} | Webhooks | member | Restore an archived webhook | - | - | 200:ok
PATCH /api/http/applications/{app}/webhooks/{webhook} | Webhooks | member | Change a webhook | - | json:WebhookUpdate | 200:Webhook
DELETE /api/http/applications/{app}/webhooks/{webhook} | Webhooks | member | Archive a webhook | - | - | 200:ok
GET /api/http/applications/{app}/webhooks/{webhook}/bearer-token | Webhooks | member | The bearer token sent to the webhook's endpoint | - | - | 200:str?
POST /api/http/applications/{app}/webhooks/{webhook}/custom-headers | Webhooks | member | Replace the webhook's custom headers | - | json:CustomHeaders | 200:ok
GET /api/http/applications/{app}/webhooks/{webhook}/custom-headers | Webhooks | member | The webhook's custom headers | - | - | 200:CustomHeaderList
GET /api/http/applications/{app}/webhooks/{webhook}/signing-key | Webhooks | member | The webhook's signing key (hex) | - | - | 200:str?
POST /api/http/applications/{app}/webhooks/{webhook}/signing-key/regenerate | Webhooks | member | Make a new signing key; the old one signs for 24 more hours | - | - | 200:ok

POST /api/http/applications/{app}/webhooks/{webhook}/subscriptions | Webhooks | member | Subscribe a webhook to events | - | json:SubscriptionCreate | 201:Subscription 413
GET /api/http/applications/{app}/webhooks/{webhook}/subscriptions | Webhooks | member | A webhook's subscriptions | - | - | 200:SubscriptionList
PATCH /api/http/applications/{app}/webhooks/{webhook}/subscriptions/{sub} | Webhooks | member | Change a subscription | - | json:SubscriptionUpdate | 200:Subscription
DELETE /api/http/applications/{app}/webhooks/{webhook}/subscriptions/{sub} | Webhooks | member | Delete a subscription | - | - | 200:ok
POST /api/http/applications/{app}/webhooks/{webhook}/subscriptions/{sub}/request-missing-rights | Webhooks | member | Request the rights a subscription's events need | - | - | 200:ok
"#;
