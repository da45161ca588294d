//! The JSON shapes of request and answer bodies, written in a short type notation.
//!
//! A field is `name TYPE`; TYPE is `int`, `num`, `str`, `bool`, `any`, `obj` (any object), a schema
//! name, `[TYPE]` (an array of it), `str=a/b` (one of those strings) or `int|str`; `|null` lets it be
//! null; a trailing `?` makes the field optional (answers may omit it, requests need not send it).
//! A shape marked `closed` refuses unknown fields, as the server does for that body.

use serde_json::{json, Map, Value};

/// `(name, closed, fields)` for object shapes; fields separated by `,`.
const OBJECTS: &[(&str, bool, &str)] = &[
    ("Error", false, "errorText str, httpStatusCode int, error str"),
    ("OAuthError", false, "error str, error_description str?"),
    ("Ok", false, "httpStatusCode int"),
    ("Status", false, "status str"),
    ("Document", false, "openapi str, info obj, paths obj"),
    ("Login", false, "username str, password str"),
    ("Member", false, "id int, username str, displayName str, role str=admin/member, createdUtc int"),
    ("Me", false, "id int, username str, displayName str, role str=admin/member, createdUtc int, authenticatedBy str=session/token"),
    ("MemberList", false, "data [Member]"),
    ("MemberCreate", true, "username str, password str, displayName str?, role str=admin/member?"),
    ("MemberUpdate", true, "displayName str?, role str=admin/member?, disabled bool?, password str?"),
    ("PasswordChange", false, "currentPassword str, password str"),
    ("TokenCreate", true, "name str, scope str=**/read?, expires int?"),
    ("Token", false, "id int, name str, scope str, expires int|null, createdUtc int, lastUsedUtc int|null"),
    ("TokenCreated", false, "id int, name str, scope str, expires int|null, createdUtc int, lastUsedUtc int|null, token str"),
    ("TokenList", false, "data [Token]"),
    ("Space", false, "id str, name str, quotaBytes int|null, usedBytes int, createdUtc int, members [str]"),
    ("SpaceList", false, "data [Space]"),
    ("SpaceCreate", true, "id str?, name str, quotaBytes int|null?"),
    ("SpaceUpdate", true, "name str?, quotaBytes int|null?"),
    ("Username", false, "username str"),
    ("Channel", false, "id int, name str, members [str], createdUtc int"),
    ("ChannelList", false, "data [Channel]"),
    ("ChannelCreate", true, "name str, members [str]|null?"),
    ("AttachmentLink", false, "className str=FileAttachment/ImageAttachment/VideoAttachment?, id int|str"),
    ("LinkedAttachment", false, "className str, id str, attachmentId int, attachmentState str, fileName str, fileSize int, contentType str, fileChecksum str"),
    ("Message", false, "id str, messageId int, channelId int, author str|null?, text str, createdUtc int, attachments [LinkedAttachment], unfurls [obj]?"),
    ("MessageList", false, "data [Message], next str|null"),
    ("MessageCreate", true, "text str, attachments [AttachmentLink]|null?"),
    ("ChatContent", false, "className str=ChatMessage.Text?, text str"),
    ("SendMessage", false, "channel str, content ChatContent, attachments [AttachmentLink]|null?"),
    ("Project", false, "id int, key str, name str, members [str], createdUtc int"),
    ("ProjectList", false, "data [Project]"),
    ("ProjectCreate", true, "key str, name str, members [str]|null?"),
    ("Issue", false, "id int, key str, number int, title str, status str, projectKey str, createdUtc int, updatedUtc int, attachments [LinkedAttachment]"),
    ("IssuePage", false, "data [Issue], next str|null, totalCount int"),
    ("IssueCreate", false, "title str, status str?, attachments [AttachmentLink]|null?"),
    ("IssueAttachments", false, "attachments [AttachmentLink]"),
    ("Attachment", false, "attachmentId int, attachmentState str, createdUtc int, lastModifiedUtc int, fileChecksum str|null, fileName str, fileSize int, contentType str, hasThumbnail bool, width int?, height int?, roomId int|null, textMessageId int|null, public bool, scanState str=pending/clean/infected/failed?"),
    ("MessageFiles", false, "files [bin]"),
    ("MessageFilesResult", false, "httpStatusCode int, attachments [Attachment]"),
    ("ShareLinkCreate", true, "attachmentId int?, spaceId str?, pathId str?, expiresAt int|null?, password str|null?, maxDownloads int|null?"),
    ("ShareLink", false, "id int, url str?, attachmentId int?, spaceId str?, pathId str?, path str?, expiresAt int|null, maxDownloads int|null, downloads int, hasPassword bool, createdUtc int, creatorId int|null, active bool"),
    ("ShareLinkList", false, "data [ShareLink]"),
    ("SharePassword", false, "password str"),
    ("Entry", false, "id str, path str, name str, kind str=file/dir, size int, type str|null, checksum str|null, meta obj?, createdUtc int, lastModifiedUtc int, scanState str=pending/clean/infected/failed?"),
    ("EntryList", false, "data [Entry], next str|null"),
    ("StorageForm", false, "file bin"),
    ("TwoStageDeclaration", true, "type str, size int, meta obj|null?"),
    ("StorageUpload", true, "file str|TwoStageDeclaration"),
    ("UploadRequest", false, "method str, url str, headers obj, expiresUtc int"),
    ("TwoStage", false, "id str, path str, uploadRequest UploadRequest"),
    ("Move", true, "to str, overwrite bool?"),
    ("SpaceLimits", false, "id str, name str, quotaBytes int|null, usedBytes int, reservedBytes int, availableBytes int|null"),
    ("UserLimits", false, "quotaBytes int|null, usedBytes int"),
    ("Limits", false, "maxFileSize int, user UserLimits, spaces [SpaceLimits]"),
    ("TokenRequest", false, "grant_type str, client_id str?, client_secret str?, scope str?, code str?, redirect_uri str?, code_verifier str?, refresh_token str?"),
    ("OAuthTokens", false, "access_token str, token_type str, expires_in int, scope str, refresh_token str?"),
    ("Consent", false, "decision str=approve/deny?, response_type str?, client_id str?, redirect_uri str?, scope str?, state str?, code_challenge str?, code_challenge_method str?"),
    ("App", false, "id str, clientId str, name str, description str|null, ownerId str|null, createdUtc int, archived bool, state str=active/uninstalling/archived, multiOrg bool, clientCredentialsFlowEnabled bool, codeFlowEnabled bool, pkceRequired bool, publicClientsAllowed bool, errorMessage str|null, lastHealthyUtc int|null"),
    ("AppPage", false, "next str|null, totalCount int, data [App]"),
    ("AppCreate", false, "name str, description str|null?, pictureAttachmentId str|null?, defaultExternalPicture str|null?, email str|null?, clientId str?, clientSecret str?, endpointUri str|null?, endpointSslVerification bool?, clientCredentialsFlowEnabled bool?, codeFlowEnabled bool?, codeFlowRedirectURIs str|null?, pkceRequired bool?, publicClientsAllowed bool?, implicitFlowEnabled bool?, implicitFlowRedirectURIs str|null?, appLevelAuth any?, sslKeystoreAuth str|null?, hasVerificationToken bool?, hasSigningKey bool?, hasPublicKeySignature bool?, basicAuthUsername str|null?, basicAuthPassword str|null?, bearerAuthToken str|null?, connectToSpace bool?, state str|null?"),
    ("AppUpdate", false, "name str?, description str|null?, pictureAttachmentId str|null?, defaultExternalPicture str|null?, clientSecret str?, endpointUri str|null?, endpointSslVerification bool?, clientCredentialsFlowEnabled bool?, codeFlowEnabled bool?, codeFlowRedirectURIs str|null?, pkceRequired bool?, publicClientsAllowed bool?, implicitFlowEnabled bool?, implicitFlowRedirectURIs str|null?, appLevelAuth any?, sslKeystoreAuth str|null?, hasVerificationToken bool?, hasSigningKey bool?, hasPublicKeySignature bool?, basicAuthUsername str|null?, basicAuthPassword str|null?, bearerAuthToken str|null?"),
    ("AccessRecordValue", false, "time int, userAgent str|null"),
    ("ErrorMessage", false, "message str|null"),
    ("PermanentTokenCreate", false, "name str, scope str?, expires int|str|null?"),
    ("PermanentTokenUpdate", false, "name str?, scope str?, expires int|str|null?"),
    ("PermanentToken", false, "id str, name str, scope str, created int, expires int|null, lastAccess int|null"),
    ("PermanentTokenCreated", false, "id str, name str, scope str, created int, expires int|null, lastAccess int|null, token str"),
    ("PermanentTokenPage", false, "next str|null, totalCount int, data [PermanentToken]"),
    ("Parameter", false, "key str, value str"),
    ("ParameterValue", false, "value str"),
    ("Right", false, "rightCode str, name str, status str=GRANTED/DENIED/PENDING?"),
    ("RightChange", false, "rightCode str, status str=GRANTED/DENIED/PENDING"),
    ("RightsUpdate", false, "contextIdentifier str, rights [RightChange]"),
    ("RightsRequest", false, "contextIdentifier str, rightCodes [str]"),
    ("RequiredRightsUpdate", false, "rightCodesToAdd [str]?, rightCodesToRemove [str]?"),
    ("PermissionContext", false, "contextIdentifier str, type str"),
    ("KeyCreate", false, "publicKey str, comment str|null?"),
    ("KeyRevoke", false, "comment str|null?"),
    ("GpgKey", false, "fingerprint str, comment str, createdUtc int, revoked bool, revokeComment str|null, publicKey str"),
    ("SshKey", false, "fingerprint str, keyType str, comment str, publicKey str, createdUtc int"),
    ("Domains", false, "domains [str]"),
    ("Patterns", false, "patterns [str]"),
    ("AuthorizeDomains", false, "domains [str], approve bool"),
    ("AuthorizePatterns", false, "patterns [str], approve bool"),
    ("UnfurlDomain", false, "domain str, status str=PENDING/APPROVED/REJECTED"),
    ("UnfurlPattern", false, "pattern str, status str=PENDING/APPROVED/REJECTED"),
    ("UnfurlQueueItem", false, "etag int, target str, messageId int, channelId int, authorId str|null, createdUtc int"),
    ("UnfurlItem", false, "etag int, content obj"),
    ("UnfurlContent", false, "unfurls [UnfurlItem]"),
    ("UnfurlResult", false, "etag int, success bool, error str?"),
    ("ExternalAuthRequest", false, "userId str, message str|null?"),
    ("ExternalAuthReset", false, "userId str"),
    ("UiExtensionsSet", false, "contextIdentifier str, extensions [obj]"),
    ("UiExtensions", false, "contextIdentifier str, extensions [obj], enabledForEverybody bool, enabledForMe bool"),
    ("Context", false, "contextIdentifier str"),
    ("Endpoint", false, "url str, sslVerification bool?"),
    ("Webhook", false, "id str, name str, description str|null, enabled bool, archived bool, endpoint Endpoint|null?, endpointAuth obj|null?, acceptedHttpResponseCodes [int], doRetries bool, payloadFields str|null, payloadTemplate str|null, createdUtc int, subscriptions [Subscription]"),
    ("WebhookPage", false, "next str|null, totalCount int, data [Webhook]"),
    ("WebhookCreate", false, "name str, description str|null?, enabled bool?, doRetries bool?, endpoint Endpoint|null?, endpointAuth obj|null?, acceptedHttpResponseCodes [int]|null?, payloadFields str|null?, payloadTemplate str|null?, subscriptions [SubscriptionCreate]|null?"),
    ("WebhookUpdate", false, "name str?, description str|null?, enabled bool?, doRetries bool?, endpoint Endpoint|null?, endpointAuth obj|null?, acceptedHttpResponseCodes [int]|null?, payloadFields str|null?, payloadTemplate str|null?"),
    ("CustomHeader", false, "name str, value str"),
    ("CustomHeaders", false, "headers [CustomHeader]"),
    ("Subscription", false, "id str, name str, enabled bool, eventTypes [str], contextIdentifier str|null"),
    ("SubscriptionCreate", false, "name str, enabled bool?, eventTypes [str], contextIdentifier str|null?"),
    ("SubscriptionUpdate", false, "name str?, enabled bool?, eventTypes [str]?, contextIdentifier str|null?"),
];

/// Shapes that are not objects: `(name, TYPE)`.
const OTHERS: &[(&str, &str)] = &[
    ("StorageUploaded", "Entry|TwoStage"),
    ("AccessRecord", "AccessRecordValue|null"),
    ("AppList", "[App]"),
    ("ParameterList", "[Parameter]"),
    ("RightList", "[Right]"),
    ("ContextList", "[PermissionContext]"),
    ("GpgKeyList", "[GpgKey]"),
    ("SshKeyList", "[SshKey]"),
    ("UnfurlDomainList", "[UnfurlDomain]"),
    ("UnfurlPatternList", "[UnfurlPattern]"),
    ("UnfurlQueue", "[UnfurlQueueItem]"),
    ("UnfurlResults", "[UnfurlResult]"),
    ("UiExtensionsList", "[UiExtensions]"),
    ("CustomHeaderList", "[CustomHeader]"),
    ("SubscriptionList", "[Subscription]"),
];

/// `components.schemas` of the document.
pub(super) fn schemas() -> Result<Map<String, Value>, String> {
    let mut out = Map::new();
    for (name, closed, fields) in OBJECTS {
        let shape = object(fields, *closed).map_err(|e| format!("schema {name}: {e}"))?;
        out.insert((*name).to_string(), shape);
    }
    for (name, ty) in OTHERS {
        let shape = type_of(ty).map_err(|e| format!("schema {name}: {e}"))?;
        out.insert((*name).to_string(), shape);
    }
    Ok(out)
}

fn object(fields: &str, closed: bool) -> Result<Value, String> {
    let mut properties = Map::new();
    let mut required = Vec::new();
    for field in fields.split(',').map(str::trim).filter(|f| !f.is_empty()) {
        let (name, ty) = field
            .split_once(' ')
            .ok_or_else(|| format!("field without a type: {field}"))?;
        let (ty, optional) = match ty.strip_suffix('?') {
            Some(t) => (t, true),
            None => (ty, false),
        };
        if !optional {
            required.push(Value::from(name));
        }
        properties.insert(name.to_string(), type_of(ty)?);
    }
    let mut shape = json!({"type": "object", "properties": properties});
    if !required.is_empty() {
        shape["required"] = Value::Array(required);
    }
    if closed {
        shape["additionalProperties"] = Value::Bool(false);
    }
    Ok(shape)
}

/// The JSON Schema of one TYPE of the notation above.
pub(super) fn type_of(ty: &str) -> Result<Value, String> {
    let alternatives: Vec<&str> = ty.split('|').collect();
    if alternatives.len() > 1 {
        let any: Result<Vec<Value>, String> = alternatives.iter().map(|t| type_of(t)).collect();
        return Ok(json!({"anyOf": any?}));
    }
    if let Some(inner) = ty.strip_prefix('[').and_then(|t| t.strip_suffix(']')) {
        return Ok(json!({"type": "array", "items": type_of(inner)?}));
    }
    if let Some(values) = ty.strip_prefix("str=") {
        return Ok(json!({"type": "string", "enum": values.split('/').collect::<Vec<_>>()}));
    }
    Ok(match ty {
        "int" => json!({"type": "integer"}),
        "num" => json!({"type": "number"}),
        "str" => json!({"type": "string"}),
        "bool" => json!({"type": "boolean"}),
        "null" => json!({"type": "null"}),
        "obj" => json!({"type": "object"}),
        "bin" => json!({"type": "string", "format": "binary"}),
        "any" => json!({}),
        name if name.starts_with(|c: char| c.is_ascii_uppercase())
            && name.chars().all(|c| c.is_ascii_alphanumeric()) =>
        {
            json!({"$ref": format!("#/components/schemas/{name}")})
        }
        other => return Err(format!("unknown type {other:?}")),
    })
}
