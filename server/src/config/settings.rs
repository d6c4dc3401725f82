//! Every setting of the configuration: its dotted key in the file and its
//! environment variable, and the raw values read before parsing.

use super::Source;

/// One setting: its dotted key, environment variable and flag.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Setting {
    Listen,
    TlsCert,
    TlsKey,
    LogFormat,
    LogLevel,
    ExpiryTimestamp,
    ExpirySnapshot,
    ExpiryTargets,
    ExpiryRoot,
    ExpiryResignBefore,
    BodyBytes,
    MaxWaiters,
    KeyTargets,
    KeySnapshot,
    KeyTimestamp,
    KeyNamespaces,
    KeyPinFile,
    AirgapValidFor,
    AirgapMaxValidFor,
    StoreKeepSuperseded,
    StoreUrl,
    PeersAllowPrivateAddresses,
    TsaEnabled,
    TsaKey,
    TsaCertChain,
    TsaPolicy,
    TsaAccuracy,
    TsaRateLimit,
    TsaRateWindow,
    PortalSessionIdle,
    PortalSessionLifetime,
}

pub(super) const KEYS: [Setting; 31] = [
    Setting::Listen,
    Setting::TlsCert,
    Setting::TlsKey,
    Setting::LogFormat,
    Setting::LogLevel,
    Setting::ExpiryTimestamp,
    Setting::ExpirySnapshot,
    Setting::ExpiryTargets,
    Setting::ExpiryRoot,
    Setting::ExpiryResignBefore,
    Setting::BodyBytes,
    Setting::MaxWaiters,
    Setting::KeyTargets,
    Setting::KeySnapshot,
    Setting::KeyTimestamp,
    Setting::KeyNamespaces,
    Setting::KeyPinFile,
    Setting::AirgapValidFor,
    Setting::AirgapMaxValidFor,
    Setting::StoreKeepSuperseded,
    Setting::StoreUrl,
    Setting::PeersAllowPrivateAddresses,
    Setting::TsaEnabled,
    Setting::TsaKey,
    Setting::TsaCertChain,
    Setting::TsaPolicy,
    Setting::TsaAccuracy,
    Setting::TsaRateLimit,
    Setting::TsaRateWindow,
    Setting::PortalSessionIdle,
    Setting::PortalSessionLifetime,
];

impl Setting {
    pub(super) fn name(self) -> &'static str {
        match self {
            Self::Listen => "listen",
            Self::TlsCert => "tls.cert",
            Self::TlsKey => "tls.key",
            Self::LogFormat => "log.format",
            Self::LogLevel => "log.level",
            Self::ExpiryTimestamp => "expiry.timestamp",
            Self::ExpirySnapshot => "expiry.snapshot",
            Self::ExpiryTargets => "expiry.targets",
            Self::ExpiryRoot => "expiry.root",
            Self::ExpiryResignBefore => "expiry.resign_before",
            Self::BodyBytes => "limits.body_bytes",
            Self::MaxWaiters => "limits.max_waiters",
            Self::KeyTargets => "keys.targets",
            Self::KeySnapshot => "keys.snapshot",
            Self::KeyTimestamp => "keys.timestamp",
            Self::KeyNamespaces => "keys.namespaces",
            Self::KeyPinFile => "keys.pin_file",
            Self::AirgapValidFor => "airgap.valid_for",
            Self::AirgapMaxValidFor => "airgap.max_valid_for",
            Self::StoreKeepSuperseded => "store.keep_superseded",
            Self::StoreUrl => "store.url",
            Self::PeersAllowPrivateAddresses => "peers.allow_private_addresses",
            Self::TsaEnabled => "tsa.enabled",
            Self::TsaKey => "tsa.key",
            Self::TsaCertChain => "tsa.cert_chain",
            Self::TsaPolicy => "tsa.policy",
            Self::TsaAccuracy => "tsa.accuracy",
            Self::TsaRateLimit => "tsa.rate_limit",
            Self::TsaRateWindow => "tsa.rate_window",
            Self::PortalSessionIdle => "portal.session_idle",
            Self::PortalSessionLifetime => "portal.session_lifetime",
        }
    }

    pub(super) fn env(self) -> &'static str {
        match self {
            Self::Listen => "KEYSHARE_LISTEN",
            Self::TlsCert => "KEYSHARE_TLS_CERT",
            Self::TlsKey => "KEYSHARE_TLS_KEY",
            Self::LogFormat => "KEYSHARE_LOG_FORMAT",
            Self::LogLevel => "KEYSHARE_LOG",
            Self::ExpiryTimestamp => "KEYSHARE_EXPIRY_TIMESTAMP",
            Self::ExpirySnapshot => "KEYSHARE_EXPIRY_SNAPSHOT",
            Self::ExpiryTargets => "KEYSHARE_EXPIRY_TARGETS",
            Self::ExpiryRoot => "KEYSHARE_EXPIRY_ROOT",
            Self::ExpiryResignBefore => "KEYSHARE_EXPIRY_RESIGN_BEFORE",
            Self::BodyBytes => "KEYSHARE_BODY_LIMIT",
            Self::MaxWaiters => "KEYSHARE_MAX_WAITERS",
            Self::KeyTargets => "KEYSHARE_KEY_TARGETS",
            Self::KeySnapshot => "KEYSHARE_KEY_SNAPSHOT",
            Self::KeyTimestamp => "KEYSHARE_KEY_TIMESTAMP",
            Self::KeyNamespaces => "KEYSHARE_KEY_NAMESPACES",
            Self::KeyPinFile => "KEYSHARE_PIN_FILE",
            Self::AirgapValidFor => "KEYSHARE_AIRGAP_VALID_FOR",
            Self::AirgapMaxValidFor => "KEYSHARE_AIRGAP_MAX_VALID_FOR",
            Self::StoreKeepSuperseded => "KEYSHARE_STORE_KEEP_SUPERSEDED",
            Self::StoreUrl => "KEYSHARE_STORE_URL",
            Self::PeersAllowPrivateAddresses => "KEYSHARE_PEERS_ALLOW_PRIVATE_ADDRESSES",
            Self::TsaEnabled => "KEYSHARE_TSA_ENABLED",
            Self::TsaKey => "KEYSHARE_TSA_KEY",
            Self::TsaCertChain => "KEYSHARE_TSA_CERT_CHAIN",
            Self::TsaPolicy => "KEYSHARE_TSA_POLICY",
            Self::TsaAccuracy => "KEYSHARE_TSA_ACCURACY",
            Self::TsaRateLimit => "KEYSHARE_TSA_RATE_LIMIT",
            Self::TsaRateWindow => "KEYSHARE_TSA_RATE_WINDOW",
            Self::PortalSessionIdle => "KEYSHARE_PORTAL_SESSION_IDLE",
            Self::PortalSessionLifetime => "KEYSHARE_PORTAL_SESSION_LIFETIME",
        }
    }

    pub(super) fn from_name(name: &str) -> Option<Self> {
        KEYS.into_iter().find(|k| k.name() == name)
    }
}

/// A raw value and where it came from, before parsing.
pub(super) type Raw = std::collections::BTreeMap<Setting, (String, Source)>;
