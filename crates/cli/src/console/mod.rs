//! The web console at `/` of each node's HTTP admin listener (`strata server --http-listen`,
//! `strata dev`): the cluster, its topics and their records, consumer groups with their lag,
//! share groups and their dead-letter topics, and forms to create topics, alter their configs
//! and redrive parked records.
//!
//! **It is a client of the cluster, nothing more.** Every page is made from `strata_client`
//! calls to this node's client listener, over TLS when the cluster uses it, as the signed-in
//! user when the cluster requires authentication (as no one when it does not). So the broker's
//! authentication and ACL checks apply to the console exactly as to the CLI: it holds no
//! authority of its own, and a user sees and changes only what their ACLs allow. That is also
//! why it lives in the CLI crate, beside the commands whose logic it shares (`dlq`), and reaches
//! the broker's listener through `BrokerConfig::http_routes`: the broker never depends on the
//! client.
//!
//! Pages are rendered on the server (askama templates under `templates/console/`); a little
//! plain JavaScript polls two JSON routes to draw throughput and lag sparklines. Sessions are an
//! unguessable token in an `HttpOnly`, `SameSite=Strict` cookie (which also keeps other sites
//! from posting the forms), held in memory: a restart signs everyone out.

mod pages;
mod show;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use strata_client::{Admin, AdminConfig, ClientTls, Credentials, ErrorCode};

use crate::tls::{ClusterTarget, ConnectTo};

/// The cookie that carries a signed-in session's token.
const SESSION_COOKIE: &str = "strata_console";
/// A session ends this long after sign-in, used or not.
const SESSION_LIFETIME: Duration = Duration::from_secs(8 * 3600);
/// Sessions held at once; past it the oldest is dropped, so sign-ins cannot grow memory without
/// bound.
const MAX_SESSIONS: usize = 1_000;
/// How long one of the console's calls to the cluster may take, retries included: a page
/// answers within this even when the cluster cannot.
const CALL_TIMEOUT_MS: u64 = 10_000;

/// The console of one node. Cheap to clone.
#[derive(Clone)]
pub struct Console {
    inner: Arc<Inner>,
}

struct Inner {
    /// This node's client address, known once the node has bound it.
    bootstrap: OnceLock<String>,
    tls: Option<ClientTls>,
    address_rewrites: Vec<(String, String)>,
    sign_in_required: bool,
    sessions: Mutex<HashMap<String, Arc<Session>>>,
    /// The one session of a cluster that requires no sign-in, made at first use.
    open: tokio::sync::Mutex<Option<Arc<Session>>>,
    failed_sign_ins: Mutex<SignInFailures>,
}

/// Failed sign-ins per address of a browser. Every sign-in reaches the cluster from this node,
/// so the cluster's own limit on failed authentications cannot tell browsers apart; this one
/// does, and turns away a guesser before its guesses reach the cluster.
#[derive(Default)]
struct SignInFailures {
    /// When each address's current window began, and its failures in it.
    by_address: HashMap<std::net::IpAddr, (Instant, u32)>,
}

/// Failed sign-ins an address may make per [`SIGN_IN_WINDOW`].
const SIGN_IN_FAILURES: u32 = 5;
const SIGN_IN_WINDOW: Duration = Duration::from_secs(60);
/// Addresses remembered at once; past it the ones whose windows ended are forgotten first.
const SIGN_IN_ADDRESSES: usize = 10_000;

impl SignInFailures {
    /// How long `address` must wait before it may try again, if it must.
    fn wait(&self, address: std::net::IpAddr, now: Instant) -> Option<Duration> {
        let (start, failures) = self.by_address.get(&address)?;
        let ends = *start + SIGN_IN_WINDOW;
        (*failures >= SIGN_IN_FAILURES && ends > now).then(|| ends - now)
    }

    fn failed(&mut self, address: std::net::IpAddr, now: Instant) {
        if self.by_address.len() >= SIGN_IN_ADDRESSES {
            self.by_address
                .retain(|_, (start, _)| *start + SIGN_IN_WINDOW > now);
        }
        let entry = self.by_address.entry(address).or_insert((now, 0));
        if entry.0 + SIGN_IN_WINDOW <= now {
            *entry = (now, 0);
        }
        entry.1 += 1;
    }
}

/// Who a page is made for, and their connection to the cluster.
pub(crate) struct Session {
    /// `None` on a cluster that requires no authentication.
    user: Option<String>,
    target: ClusterTarget,
    admin: Admin,
    expires: Instant,
}

impl Console {
    /// A console that reaches the cluster with `tls` (`None`: plaintext), dialing brokers as
    /// `address_rewrites` say (advertised, reachable), and asks users to sign in when
    /// `sign_in_required` (the cluster requires authentication).
    pub fn new(
        tls: Option<ClientTls>,
        address_rewrites: Vec<(String, String)>,
        sign_in_required: bool,
    ) -> Console {
        Console {
            inner: Arc::new(Inner {
                bootstrap: OnceLock::new(),
                tls,
                address_rewrites,
                sign_in_required,
                sessions: Mutex::new(HashMap::new()),
                open: tokio::sync::Mutex::new(None),
                failed_sign_ins: Mutex::new(SignInFailures::default()),
            }),
        }
    }

    /// Points the console at this node's client listener once it is bound; until then every
    /// page answers 503.
    pub fn serve_from(&self, bootstrap: String) {
        let _ = self.inner.bootstrap.set(bootstrap);
    }

    pub fn router(&self) -> Router {
        pages::router()
            .layer(axum::middleware::from_fn(refuse_cross_site_posts))
            .with_state(self.clone())
    }

    fn target(&self, credentials: Option<Credentials>) -> Result<ClusterTarget, PageError> {
        let bootstrap = self.inner.bootstrap.get().ok_or_else(|| {
            PageError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "this node is still starting; try again in a moment",
            )
        })?;
        Ok(ClusterTarget {
            bootstrap: bootstrap.clone(),
            tls: self.inner.tls.clone(),
            credentials,
            address_rewrites: self.inner.address_rewrites.clone(),
        })
    }

    /// Connects as `credentials` and proves them with one call, so a wrong password fails here
    /// rather than on the first page.
    async fn connect(&self, credentials: Option<Credentials>) -> Result<Session, PageError> {
        let target = self.target(credentials)?;
        let config = AdminConfig::builder()
            .aimed_at(&target)
            .connect_timeout_ms(CALL_TIMEOUT_MS.min(5_000))
            .request_timeout_ms(CALL_TIMEOUT_MS)
            .api_timeout_ms(CALL_TIMEOUT_MS)
            .build()?;
        let admin = Admin::connect(config).await?;
        admin.describe_cluster().await?;
        Ok(Session {
            user: target.credentials.as_ref().map(|c| c.user().to_string()),
            target,
            admin,
            expires: Instant::now() + SESSION_LIFETIME,
        })
    }

    /// Signs `user` in for a browser at `from` and returns the new session's token.
    async fn sign_in(
        &self,
        from: Option<std::net::IpAddr>,
        user: &str,
        password: &str,
    ) -> Result<String, PageError> {
        let failures = || {
            self.inner
                .failed_sign_ins
                .lock()
                .expect("sign-in failures lock")
        };
        if let Some(wait) = from.and_then(|from| failures().wait(from, Instant::now())) {
            return Err(PageError::new(
                StatusCode::TOO_MANY_REQUESTS,
                format!(
                    "too many failed sign-ins from your address; try again in {} s",
                    wait.as_secs().max(1)
                ),
            ));
        }
        let session = match self.connect(Some(Credentials::new(user, password))).await {
            Ok(session) => session,
            Err(error) => {
                if let Some(from) = from
                    && error.status == StatusCode::UNAUTHORIZED
                {
                    failures().failed(from, Instant::now());
                }
                return Err(error);
            }
        };
        let token = session_token();
        let mut sessions = self.inner.sessions.lock().expect("sessions lock");
        let now = Instant::now();
        sessions.retain(|_, session| session.expires > now);
        if sessions.len() >= MAX_SESSIONS
            && let Some(oldest) = sessions
                .iter()
                .min_by_key(|(_, session)| session.expires)
                .map(|(token, _)| token.clone())
        {
            sessions.remove(&oldest);
        }
        sessions.insert(token.clone(), Arc::new(session));
        Ok(token)
    }

    fn sign_out(&self, token: &str) {
        self.inner
            .sessions
            .lock()
            .expect("sessions lock")
            .remove(token);
    }

    /// The session `parts` belongs to, if any.
    async fn session_of(&self, parts: &Parts) -> Result<Option<Arc<Session>>, PageError> {
        if !self.inner.sign_in_required {
            let mut open = self.inner.open.lock().await;
            if open.is_none() {
                *open = Some(Arc::new(self.connect(None).await?));
            }
            return Ok(open.clone());
        }
        let Some(token) = session_cookie(parts) else {
            return Ok(None);
        };
        let sessions = self.inner.sessions.lock().expect("sessions lock");
        Ok(sessions
            .get(token)
            .filter(|session| session.expires > Instant::now())
            .cloned())
    }
}

/// Form posts from other sites are refused: on a cluster without sign-in no cookie stands
/// between a page on the web and a console on this machine's loopback, so the browser's own
/// word on where a post comes from (`Sec-Fetch-Site`, else `Origin`) decides.
async fn refuse_cross_site_posts(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    if request.method() == axum::http::Method::POST && is_cross_site(request.headers()) {
        return PageError::new(
            StatusCode::FORBIDDEN,
            "this form was posted from another site; the console takes forms only from its \
             own pages",
        )
        .into_response();
    }
    next.run(request).await
}

fn is_cross_site(headers: &axum::http::HeaderMap) -> bool {
    let text = |name| headers.get(name).map(|value| value.to_str().unwrap_or(""));
    if let Some(site) = text("sec-fetch-site") {
        return !matches!(site, "same-origin" | "none");
    }
    match (text("origin"), text("host")) {
        (None, _) => false,
        (Some(origin), Some(host)) => {
            let origin_host = origin
                .strip_prefix("http://")
                .or_else(|| origin.strip_prefix("https://"));
            origin_host != Some(host)
        }
        (Some(_), None) => true,
    }
}

/// 32 bytes from the operating system's generator, as hex: unguessable, and safe in a cookie.
fn session_token() -> String {
    let bytes: [u8; 32] = rand::random();
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

fn session_cookie(parts: &Parts) -> Option<&str> {
    parts
        .headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|cookies| cookies.split(';'))
        .filter_map(|cookie| cookie.trim().split_once('='))
        .find(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, token)| token)
}

/// The signed-in session a handler works for; a request without one is sent to sign in and
/// brought back afterwards.
pub(crate) struct Signed(Arc<Session>);

impl FromRequestParts<Console> for Signed {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, console: &Console) -> Result<Self, Response> {
        match console.session_of(parts).await {
            Ok(Some(session)) => Ok(Signed(session)),
            Ok(None) => {
                // The console's router is the listener's own, not nested: this is the path
                // the browser asked for.
                let back = parts.uri.path_and_query().map_or("/", |path| path.as_str());
                let login = format!("/login?next={}", pages::query_escape(back));
                Err(Redirect::to(&login).into_response())
            }
            Err(error) => Err(error.into_response()),
        }
    }
}

/// A page that could not be made: its status and what to tell the user.
#[derive(Debug)]
pub(crate) struct PageError {
    status: StatusCode,
    message: String,
}

impl PageError {
    fn new(status: StatusCode, message: impl Into<String>) -> PageError {
        PageError {
            status,
            message: message.into(),
        }
    }

    fn bad_request(message: impl Into<String>) -> PageError {
        PageError::new(StatusCode::BAD_REQUEST, message)
    }
}

/// The cluster's answer, with the status a browser user expects for it.
impl From<strata_client::Error> for PageError {
    fn from(error: strata_client::Error) -> PageError {
        let status = match error.code() {
            Some(
                ErrorCode::TopicAuthorizationFailed
                | ErrorCode::GroupAuthorizationFailed
                | ErrorCode::ClusterAuthorizationFailed,
            ) => StatusCode::FORBIDDEN,
            Some(ErrorCode::SaslAuthenticationFailed) => StatusCode::UNAUTHORIZED,
            Some(ErrorCode::UnknownTopicOrPartition | ErrorCode::GroupIdNotFound) => {
                StatusCode::NOT_FOUND
            }
            Some(_) => StatusCode::BAD_REQUEST,
            None => match error {
                strata_client::Error::InvalidInput(_) | strata_client::Error::Config(_) => {
                    StatusCode::BAD_REQUEST
                }
                _ => StatusCode::BAD_GATEWAY,
            },
        };
        PageError::new(status, error.to_string())
    }
}

/// What a command shared with the CLI (`dlq`) returns: the cluster's answer when that is what
/// failed.
impl From<anyhow::Error> for PageError {
    fn from(error: anyhow::Error) -> PageError {
        match error.downcast::<strata_client::Error>() {
            Ok(error) => PageError::from(error),
            Err(error) => PageError::new(StatusCode::BAD_GATEWAY, format!("{error:#}")),
        }
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let page = pages::ErrorPage {
            chrome: pages::Chrome::bare(false),
            status: self.status.as_u16(),
            reason: self.status.canonical_reason().unwrap_or(""),
            message: self.message,
        };
        (self.status, render(&page)).into_response()
    }
}

/// `template` as an HTML page; a template that fails to render is a bug, said as one.
fn render(template: &impl askama::Template) -> Response {
    match template.render() {
        Ok(html) => Html(html).into_response(),
        Err(error) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("the console could not render this page: {error}"),
        )
            .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_tokens_are_long_random_and_cookie_safe() {
        let (first, second) = (session_token(), session_token());
        assert_eq!(first.len(), 64);
        assert_ne!(first, second);
        assert!(first.chars().all(|c| c.is_ascii_hexdigit()));
    }

    #[test]
    fn posts_from_other_sites_are_told_apart() {
        let headers = |pairs: &[(&'static str, &'static str)]| {
            let mut map = axum::http::HeaderMap::new();
            for (name, value) in pairs {
                map.insert(*name, value.parse().unwrap());
            }
            map
        };
        assert!(!is_cross_site(&headers(&[("host", "127.0.0.1:8080")])));
        assert!(!is_cross_site(&headers(&[
            ("host", "127.0.0.1:8080"),
            ("origin", "http://127.0.0.1:8080")
        ])));
        assert!(is_cross_site(&headers(&[
            ("host", "127.0.0.1:8080"),
            ("origin", "https://evil.example")
        ])));
        assert!(is_cross_site(&headers(&[
            ("host", "127.0.0.1:8080"),
            ("origin", "null")
        ])));
        assert!(is_cross_site(&headers(&[
            ("host", "127.0.0.1:8080"),
            ("origin", "http://127.0.0.1:8080"),
            ("sec-fetch-site", "cross-site")
        ])));
        assert!(!is_cross_site(&headers(&[(
            "sec-fetch-site",
            "same-origin"
        )])));
    }

    #[test]
    fn sign_in_failures_are_limited_per_address_and_window() {
        let (mut failures, now) = (SignInFailures::default(), Instant::now());
        let (guesser, other) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        for _ in 0..SIGN_IN_FAILURES - 1 {
            failures.failed(guesser, now);
        }
        assert_eq!(failures.wait(guesser, now), None);
        failures.failed(guesser, now);
        assert_eq!(failures.wait(guesser, now), Some(SIGN_IN_WINDOW));
        assert_eq!(failures.wait(other, now), None);
        assert_eq!(failures.wait(guesser, now + SIGN_IN_WINDOW), None);
        // A failure after the window starts a new one.
        failures.failed(guesser, now + SIGN_IN_WINDOW);
        assert_eq!(failures.wait(guesser, now + SIGN_IN_WINDOW), None);
    }

    #[test]
    fn the_session_cookie_is_found_among_others() {
        let request = axum::http::Request::builder()
            .header(header::COOKIE, "theme=dark; strata_console=abc123")
            .header(header::COOKIE, "other=1")
            .body(())
            .unwrap();
        let (parts, ()) = request.into_parts();
        assert_eq!(session_cookie(&parts), Some("abc123"));
        let request = axum::http::Request::builder()
            .header(header::COOKIE, "strata_console_old=zzz")
            .body(())
            .unwrap();
        let (parts, ()) = request.into_parts();
        assert_eq!(session_cookie(&parts), None);
    }
}
