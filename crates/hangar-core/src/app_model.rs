//! The applications platform as types: an application's settings, state and sealed secrets
//! (`AppDoc`), and the value of each kind of item it owns (`ItemKind`: rights, webhooks,
//! subscriptions, keys, unfurl declarations and queue items, parameters…).
//!
//! The store keeps these as JSON (`applications.doc`, `app_items.value`) with the field names below,
//! which are also the names the API speaks; reading a value that does not fit its type is a store
//! error, never a panic. Fields added later must have a default so that stored values still read.

use crate::secrets::{SealError, Secrets};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

/// Where an application is in its life.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AppStatus {
    #[default]
    Active,
    /// Removal asked; archived once the application acknowledges ApplicationUninstalledPayload.
    Uninstalling,
    Archived,
}

impl AppStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            AppStatus::Active => "active",
            AppStatus::Uninstalling => "uninstalling",
            AppStatus::Archived => "archived",
        }
    }
}

/// How an application authenticates what Hangar sends it (seed 003's `appLevelAuth`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum AppLevelAuth {
    #[default]
    None,
    VerificationToken,
    SigningKey,
    PublicKey,
}

impl AppLevelAuth {
    pub const ALL: [AppLevelAuth; 4] = [
        AppLevelAuth::None,
        AppLevelAuth::VerificationToken,
        AppLevelAuth::SigningKey,
        AppLevelAuth::PublicKey,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AppLevelAuth::None => "none",
            AppLevelAuth::VerificationToken => "verificationToken",
            AppLevelAuth::SigningKey => "signingKey",
            AppLevelAuth::PublicKey => "publicKey",
        }
    }

    pub fn parse(s: &str) -> Option<AppLevelAuth> {
        Self::ALL.into_iter().find(|a| a.as_str() == s)
    }
}

/// The names of the secrets an application or a webhook holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum SecretName {
    /// The OAuth client secret (application).
    ClientSecret,
    /// The key that signs what is sent (application and webhook).
    SigningKey,
    /// The signing key before the last rotation, signing beside the new one for a grace period.
    PreviousSigningKey,
    /// Sent in payloads for the application to check (application).
    VerificationToken,
    /// Endpoint authentication of the application.
    BasicAuthPassword,
    BearerAuthToken,
    /// Endpoint authentication of a webhook.
    Password,
    BearerToken,
}

/// Secrets sealed at rest (`Secrets::seal`), by name.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SealedSecrets(BTreeMap<SecretName, String>);

impl SealedSecrets {
    pub fn has(&self, name: SecretName) -> bool {
        self.0.contains_key(&name)
    }

    /// The secret `name`, opened.
    pub fn open(&self, secrets: &Secrets, name: SecretName) -> Result<Option<String>, SealError> {
        self.0.get(&name).map(|s| secrets.open(s)).transpose()
    }

    /// Seals `value` as the secret `name` (None removes it).
    pub fn set(&mut self, secrets: &Secrets, name: SecretName, value: Option<&str>) {
        match value {
            Some(v) => {
                self.0.insert(name, secrets.seal(v));
            }
            None => {
                self.0.remove(&name);
            }
        }
    }

    /// Makes `key` the signing key; the one it replaces (if any) keeps signing until `until`, which
    /// is answered when there was one.
    pub fn rotate_signing_key(&mut self, secrets: &Secrets, key: &str, until: i64) -> Option<i64> {
        let old = self.0.remove(&SecretName::SigningKey);
        let rotated = old.map(|old| {
            self.0.insert(SecretName::PreviousSigningKey, old);
            until
        });
        self.set(secrets, SecretName::SigningKey, Some(key));
        rotated
    }

    /// The keys that sign now: the current one, and the previous one while its grace lasts.
    pub fn signing_keys(
        &self,
        secrets: &Secrets,
        previous_until: Option<i64>,
        now: i64,
    ) -> Result<Vec<String>, SealError> {
        let mut keys: Vec<String> = self
            .open(secrets, SecretName::SigningKey)?
            .into_iter()
            .collect();
        if previous_until.is_some_and(|t| t > now) {
            keys.extend(self.open(secrets, SecretName::PreviousSigningKey)?);
        }
        Ok(keys)
    }
}

/// When an application last took a token with its client credentials, and with what.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClientCredentialsAccess {
    pub time: i64,
    pub user_agent: Option<String>,
}

/// What an administrator (or the application itself) sets on an application.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct AppSettings {
    pub description: Option<String>,
    pub picture_attachment_id: Option<String>,
    pub default_external_picture: Option<String>,
    pub email: Option<String>,
    pub client_credentials_flow_enabled: bool,
    pub code_flow_enabled: bool,
    /// Space-separated.
    #[serde(rename = "codeFlowRedirectURIs")]
    pub code_flow_redirect_uris: Option<String>,
    pub pkce_required: bool,
    pub public_clients_allowed: bool,
    pub implicit_flow_enabled: bool,
    #[serde(rename = "implicitFlowRedirectURIs")]
    pub implicit_flow_redirect_uris: Option<String>,
    /// Where payloads without a webhook endpoint of their own go.
    pub endpoint_uri: Option<String>,
    pub endpoint_ssl_verification: bool,
    pub app_level_auth: AppLevelAuth,
    pub ssl_keystore_auth: Option<String>,
    pub has_verification_token: bool,
    pub has_signing_key: bool,
    pub has_public_key_signature: bool,
    pub basic_auth_username: Option<String>,
}

impl Default for AppSettings {
    fn default() -> Self {
        AppSettings {
            description: None,
            picture_attachment_id: None,
            default_external_picture: None,
            email: None,
            client_credentials_flow_enabled: true,
            code_flow_enabled: false,
            code_flow_redirect_uris: None,
            pkce_required: false,
            public_clients_allowed: false,
            implicit_flow_enabled: false,
            implicit_flow_redirect_uris: None,
            endpoint_uri: None,
            endpoint_ssl_verification: true,
            app_level_auth: AppLevelAuth::None,
            ssl_keystore_auth: None,
            has_verification_token: false,
            has_signing_key: false,
            has_public_key_signature: false,
            basic_auth_username: None,
        }
    }
}

impl AppSettings {
    /// The registered redirect URIs of the code flow.
    pub fn redirect_uris(&self) -> impl Iterator<Item = &str> {
        self.code_flow_redirect_uris
            .as_deref()
            .unwrap_or("")
            .split_whitespace()
    }
}

/// Everything about an application beyond its id, client id, name and archived flag.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct AppDoc {
    /// The member who created it.
    pub owner_id: Option<String>,
    /// Installed into the server by connecting (`connectToSpace`): managed by itself.
    pub multi_org: bool,
    pub state: AppStatus,
    #[serde(flatten)]
    pub settings: AppSettings,
    /// What the application last reported as wrong with it (None: nothing).
    pub error_message: Option<String>,
    pub last_healthy_utc: Option<i64>,
    pub last_client_credentials_access: Option<ClientCredentialsAccess>,
    pub previous_signing_key_until: Option<i64>,
    pub secrets: SealedSecrets,
}

impl AppDoc {
    /// A new application's document.
    pub fn new(owner_id: i64, multi_org: bool) -> AppDoc {
        AppDoc {
            owner_id: Some(owner_id.to_string()),
            multi_org,
            ..AppDoc::default()
        }
    }

    /// The stored form.
    pub fn to_json(&self) -> String {
        // Cannot fail: every field is a string, number, bool, or a map with string keys.
        serde_json::to_string(self).unwrap_or_else(|_| "{}".into())
    }

    /// Reads the stored form.
    pub fn from_json(text: &str) -> Result<AppDoc, DecodeError> {
        serde_json::from_str(text).map_err(|e| DecodeError {
            what: "application document",
            why: e.to_string(),
        })
    }
}

/// The kinds of item an application owns. Each names the type of its value (in the comment).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ItemKind {
    /// `String`, scoped by nothing.
    Parameter,
    /// `String`, scoped by the member.
    ProfileParameter,
    /// `bool` (true), keyed by right code.
    RequiredRight,
    /// `RightGrant`, scoped by context, keyed by right code.
    Right,
    /// `Webhook`, keyed by its id.
    Webhook,
    /// `Subscription`, scoped by its webhook's id.
    Subscription,
    /// `GpgKey`, keyed by fingerprint.
    GpgKey,
    /// `SshKeyRecord`, keyed by fingerprint.
    SshKey,
    /// `Declaration`, keyed by domain.
    UnfurlDomain,
    /// `Declaration`, keyed by external id prefix.
    UnfurlPattern,
    /// `UnfurlQueueItem`, keyed by `app_ops::queue_key(etag)`.
    UnfurlQueue,
    /// `UnfurlContent`, scoped by message id, keyed by target.
    UnfurlContent,
    /// `ExternalAuthRequest`, scoped by member id.
    ExternalAuth,
    /// A JSON object with a `className`, scoped by context.
    UiExtension,
    /// `bool`, scoped by context, keyed by member id or `*` (everybody).
    UiPreference,
}

impl ItemKind {
    pub const ALL: [ItemKind; 15] = [
        ItemKind::Parameter,
        ItemKind::ProfileParameter,
        ItemKind::RequiredRight,
        ItemKind::Right,
        ItemKind::Webhook,
        ItemKind::Subscription,
        ItemKind::GpgKey,
        ItemKind::SshKey,
        ItemKind::UnfurlDomain,
        ItemKind::UnfurlPattern,
        ItemKind::UnfurlQueue,
        ItemKind::UnfurlContent,
        ItemKind::ExternalAuth,
        ItemKind::UiExtension,
        ItemKind::UiPreference,
    ];

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            ItemKind::Parameter => "parameter",
            ItemKind::ProfileParameter => "profile-parameter",
            ItemKind::RequiredRight => "required-right",
            ItemKind::Right => "right",
            ItemKind::Webhook => "webhook",
            ItemKind::Subscription => "subscription",
            ItemKind::GpgKey => "gpg-key",
            ItemKind::SshKey => "ssh-key",
            ItemKind::UnfurlDomain => "unfurl-domain",
            ItemKind::UnfurlPattern => "unfurl-pattern",
            ItemKind::UnfurlQueue => "unfurl-queue",
            ItemKind::UnfurlContent => "unfurl-content",
            ItemKind::ExternalAuth => "external-auth",
            ItemKind::UiExtension => "ui-extension",
            ItemKind::UiPreference => "ui-preference",
        }
    }

    pub fn parse(s: &str) -> Option<ItemKind> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// A value in its stored form.
pub fn encode<T: Serialize>(value: &T) -> Value {
    // Cannot fail for the types of this module: no maps with non-string keys, no floats that are NaN.
    serde_json::to_value(value).unwrap_or(Value::Null)
}

/// A stored value that does not fit its type.
#[derive(Debug, thiserror::Error)]
#[error("a stored {what} does not read: {why}")]
pub struct DecodeError {
    pub what: &'static str,
    pub why: String,
}

/// A stored value read as `T`.
pub fn decode<T: DeserializeOwned>(kind: ItemKind, value: &Value) -> Result<T, DecodeError> {
    T::deserialize(value).map_err(|e| DecodeError {
        what: kind.as_str(),
        why: e.to_string(),
    })
}

/// An administrator's verdict on a right or a declaration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum GrantStatus {
    Granted,
    Denied,
    /// Requested, not decided.
    Pending,
}

impl GrantStatus {
    pub fn parse(s: &str) -> Option<GrantStatus> {
        match s {
            "GRANTED" => Some(GrantStatus::Granted),
            "DENIED" => Some(GrantStatus::Denied),
            "PENDING" => Some(GrantStatus::Pending),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            GrantStatus::Granted => "GRANTED",
            GrantStatus::Denied => "DENIED",
            GrantStatus::Pending => "PENDING",
        }
    }
}

/// A right of an application in a context.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RightGrant {
    pub status: GrantStatus,
}

/// An administrator's verdict on a declared unfurl domain or pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Verdict {
    Pending,
    Approved,
    Rejected,
}

/// An unfurl domain or pattern the application declared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Declaration {
    pub status: Verdict,
}

/// Where a webhook sends, when not to the application's endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Endpoint {
    pub url: String,
    pub ssl_verification: bool,
}

/// How a webhook authenticates to its endpoint.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EndpointAuth {
    #[default]
    None,
    /// `authUsername` and the sealed `password`.
    Basic,
    /// The sealed `bearerToken`.
    Bearer,
}

/// A custom header sent with each delivery; its value sealed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealedHeader {
    pub name: String,
    pub value: String,
}

/// A webhook of an application.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Webhook {
    pub name: String,
    pub description: Option<String>,
    pub enabled: bool,
    pub archived: bool,
    /// None: the application's endpoint.
    pub endpoint: Option<Endpoint>,
    pub auth_type: EndpointAuth,
    pub auth_username: Option<String>,
    /// Answers taken as success besides 2xx.
    pub accepted_http_response_codes: Vec<u16>,
    pub do_retries: bool,
    /// Comma-separated top-level payload fields to keep (None: all).
    pub payload_fields: Option<String>,
    /// A body template (`apps::render_template`) instead of the JSON envelope.
    pub payload_template: Option<String>,
    pub headers: Vec<SealedHeader>,
    pub previous_signing_key_until: Option<i64>,
    pub secrets: SealedSecrets,
}

impl Default for Webhook {
    fn default() -> Self {
        Webhook {
            name: String::new(),
            description: None,
            enabled: true,
            archived: false,
            endpoint: None,
            auth_type: EndpointAuth::None,
            auth_username: None,
            accepted_http_response_codes: vec![],
            do_retries: true,
            payload_fields: None,
            payload_template: None,
            headers: vec![],
            previous_signing_key_until: None,
            secrets: SealedSecrets::default(),
        }
    }
}

impl Webhook {
    /// Whether deliveries go out: enabled and not archived.
    pub fn live(&self) -> bool {
        self.enabled && !self.archived
    }

    /// The custom headers, opened.
    pub fn open_headers(&self, secrets: &Secrets) -> Result<Vec<(String, String)>, SealError> {
        self.headers
            .iter()
            .map(|h| Ok((h.name.clone(), secrets.open(&h.value)?)))
            .collect()
    }
}

/// Which events a webhook is sent, and from which context.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Subscription {
    pub name: String,
    pub enabled: bool,
    pub event_types: Vec<String>,
    /// None: every context the application may see.
    pub context_identifier: Option<String>,
}

impl Subscription {
    /// Whether it wants an event of `event_type` that happened in `context` (None: no context).
    pub fn wants(&self, event_type: &str, context: Option<&str>) -> bool {
        self.enabled
            && self.event_types.iter().any(|t| t == event_type)
            && match self.context_identifier.as_deref() {
                None | Some("global") => true,
                Some(only) => context == Some(only),
            }
    }
}

/// An OpenPGP public key of an application.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GpgKey {
    pub fingerprint: String,
    pub comment: String,
    pub public_key: String,
    pub created_utc: i64,
    pub revoked: bool,
    pub revoke_comment: Option<String>,
}

/// An SSH public key of an application.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SshKeyRecord {
    pub fingerprint: String,
    pub key_type: String,
    pub comment: String,
    pub public_key: String,
    pub created_utc: i64,
}

/// A link (or external id) in a message, waiting for an application to preview it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UnfurlQueueItem {
    pub etag: i64,
    pub target: String,
    pub message_id: Option<i64>,
    pub channel_id: Option<i64>,
    pub author_id: Option<String>,
    pub created_utc: i64,
}

/// A preview an application posted for a link in a message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UnfurlContent {
    pub target: String,
    pub app_id: String,
    /// A JSON object of the application's making (at most 16 KiB).
    pub content: Value,
}

/// An application asking a member to authenticate with it before it can preview their links.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExternalAuthRequest {
    pub user_id: String,
    pub message: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::AppItem;
    use serde_json::json;

    #[test]
    fn a_stored_document_reads_and_writes_back_with_the_same_names() {
        let stored = json!({
            "ownerId": "1", "multiOrg": true, "state": "uninstalling", "description": null,
            "endpointUri": "https://app.example/hook", "codeFlowRedirectURIs": "https://a/cb",
            "clientCredentialsFlowEnabled": false, "appLevelAuth": "signingKey",
            "lastClientCredentialsAccess": {"time": 5, "userAgent": "curl"},
            "previousSigningKeyUntil": 9, "secrets": {"clientSecret": "sealed", "signingKey": "k"},
        });
        let doc: AppDoc = serde_json::from_value(stored.clone()).unwrap();
        assert_eq!(doc.state, AppStatus::Uninstalling);
        assert!(!doc.settings.client_credentials_flow_enabled);
        assert!(
            doc.settings.endpoint_ssl_verification,
            "absent means the default"
        );
        assert_eq!(doc.settings.app_level_auth, AppLevelAuth::SigningKey);
        assert!(doc.secrets.has(SecretName::ClientSecret));
        assert_eq!(
            doc.settings.redirect_uris().collect::<Vec<_>>(),
            ["https://a/cb"]
        );
        let back = serde_json::to_value(&doc).unwrap();
        for key in [
            "ownerId",
            "multiOrg",
            "state",
            "endpointUri",
            "codeFlowRedirectURIs",
        ] {
            assert_eq!(back[key], stored[key], "{key}");
        }
        assert_eq!(back["secrets"], stored["secrets"]);
        assert!(AppDoc::from_json("[1]").is_err());
        assert_eq!(AppDoc::from_json("{}").unwrap(), AppDoc::default());
    }

    #[test]
    fn secrets_seal_open_and_rotate() {
        let secrets = Secrets::new(&[7; 32]);
        let mut s = SealedSecrets::default();
        s.set(&secrets, SecretName::SigningKey, Some("one"));
        assert_eq!(s.rotate_signing_key(&secrets, "two", 100), Some(100));
        assert_eq!(
            s.signing_keys(&secrets, Some(100), 50).unwrap(),
            ["two", "one"]
        );
        assert_eq!(s.signing_keys(&secrets, Some(100), 150).unwrap(), ["two"]);
        s.set(&secrets, SecretName::SigningKey, None);
        assert_eq!(s.open(&secrets, SecretName::SigningKey).unwrap(), None);
        assert!(
            !serde_json::to_string(&s).unwrap().contains("two"),
            "sealed at rest"
        );
    }

    #[test]
    fn items_carry_their_kind_and_refuse_a_value_of_another_shape() {
        let item = AppItem::new(
            1,
            ItemKind::Right,
            "global",
            "Space.Files.Read",
            &RightGrant {
                status: GrantStatus::Granted,
            },
        );
        assert_eq!(item.value, json!({"status": "GRANTED"}));
        assert_eq!(
            item.get::<RightGrant>().unwrap().status,
            GrantStatus::Granted
        );
        assert!(
            item.get::<Webhook>().is_ok(),
            "every webhook field has a default"
        );
        assert!(item.get::<Subscription>().is_err());
        for k in ItemKind::ALL {
            assert_eq!(ItemKind::parse(k.as_str()), Some(k));
        }
        assert_eq!(ItemKind::parse("nope"), None);
    }

    #[test]
    fn subscriptions_match_type_and_context() {
        let s = Subscription {
            name: "s".into(),
            enabled: true,
            event_types: vec!["Issue.Created".into()],
            context_identifier: Some("project:key:A".into()),
        };
        assert!(s.wants("Issue.Created", Some("project:key:A")));
        assert!(!s.wants("Issue.Created", Some("project:key:B")));
        assert!(!s.wants("Issue.Updated", Some("project:key:A")));
        assert!(!Subscription {
            enabled: false,
            ..s.clone()
        }
        .wants("Issue.Created", Some("project:key:A")));
        let everywhere = Subscription {
            context_identifier: None,
            ..s
        };
        assert!(everywhere.wants("Issue.Created", None));
    }
}
