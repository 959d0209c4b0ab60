//! `GET /`: the status page for people, one self-contained HTML file
//! (`status_page.html`) whose script reads only our JSON API from the browser.
//! It is served under a strict Content-Security-Policy that allows exactly its
//! one inline `<script>` and one inline `<style>` (by sha256) and same-origin
//! `fetch`, nothing else: no other script, no framing, no form posts, so even
//! text from indexed files that slipped into markup could never run.
//! The "Add folder" form is no exception: its script sends `POST /sources` as
//! JSON with `fetch` from the page's own origin (so the service's Host and
//! content-type checks apply to it like to any client), never as an HTML form
//! submission, and `form-action 'none'` stays.

use axum::http::header;
use axum::response::IntoResponse;

/// The page, compiled in: no assets on disk, no build step.
const HTML: &str = include_str!("status_page.html");

/// The policy. The two hashes are the sha256 (base64) of the exact text
/// between `<script>` and `</script>`, and between `<style>` and `</style>`,
/// in `status_page.html`; the unit test below recomputes them and prints the
/// new values when the page changes.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; \
     script-src 'sha256-GV+koZUv/0o83bMyuFqKBpq2cGV8IofSDfycq71m0R8='; \
     style-src 'sha256-z+0zZHBLQK0R1aHbuvieiky4EZMM1X4Ihf7pLNu9xUU='; \
     connect-src 'self'; img-src 'self' data:; \
     base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// `GET /`: the status page.
pub async fn page() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::REFERRER_POLICY, "no-referrer"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        HTML,
    )
}

#[cfg(test)]
mod tests {
    use axum::http::StatusCode;
    use base64::Engine;
    use sha2::{Digest, Sha256};

    use super::*;

    /// The text of the one `<tag>...</tag>` element (no attributes) in the page.
    fn only_inline(tag: &str) -> &'static str {
        let (open, close) = (format!("<{tag}>"), format!("</{tag}>"));
        assert_eq!(HTML.matches(&open).count(), 1, "exactly one {open} in the page");
        assert_eq!(
            HTML.matches(&format!("<{tag}")).count(),
            1,
            "no other <{tag} element (it would need its own hash)"
        );
        let start = HTML.find(&open).unwrap() + open.len();
        let len = HTML[start..].find(&close).expect("closed");
        &HTML[start..start + len]
    }

    fn hash(text: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(Sha256::digest(text.as_bytes()))
    }

    /// The sources of one CSP directive.
    fn directive(name: &str) -> Vec<&'static str> {
        let d = CONTENT_SECURITY_POLICY
            .split(';')
            .map(str::trim)
            .find(|d| d.split_whitespace().next() == Some(name))
            .unwrap_or_else(|| panic!("no {name} in the CSP"));
        d.split_whitespace().skip(1).collect()
    }

    #[test]
    fn csp_hashes_match_the_inline_script_and_style() {
        for (tag, dir) in [("script", "script-src"), ("style", "style-src")] {
            let want = format!("'sha256-{}'", hash(only_inline(tag)));
            assert_eq!(
                directive(dir),
                vec![want.as_str()],
                "status_page.html's <{tag}> changed: set {dir} to {want} in CONTENT_SECURITY_POLICY"
            );
        }
        assert_eq!(directive("default-src"), ["'none'"]);
        assert_eq!(directive("connect-src"), ["'self'"]);
        assert_eq!(directive("frame-ancestors"), ["'none'"]);
        assert_eq!(directive("form-action"), ["'none'"]);
        assert_eq!(directive("base-uri"), ["'none'"]);
    }

    #[test]
    fn markup_needs_nothing_the_csp_forbids() {
        let script = only_inline("script");
        let style = only_inline("style");
        let markup = HTML.replace(script, "").replace(style, "");
        // Inline handlers and style attributes are blocked by a hash-only CSP.
        for bad in [
            " onclick=",
            " onload=",
            " onerror=",
            " onsubmit=",
            " style=",
            "javascript:",
        ] {
            assert!(!markup.contains(bad), "the markup uses {bad:?}");
        }
        for external in [
            "src=\"http",
            "href=\"http",
            "src=\"//",
            "href=\"//",
            "@import",
            "url(",
        ] {
            assert!(
                !HTML.contains(external),
                "the page loads something external: {external:?}"
            );
        }
        // Data goes into the DOM as text only.
        for sink in [
            "innerHTML",
            "outerHTML",
            "insertAdjacentHTML",
            "document.write",
            "eval(",
        ] {
            assert!(!script.contains(sink), "the script uses {sink}");
        }
    }

    #[tokio::test]
    async fn serves_the_page_with_its_headers() {
        let resp = page().await.into_response();
        assert_eq!(resp.status(), StatusCode::OK);
        let h = resp.headers();
        assert_eq!(h[header::CONTENT_TYPE], "text/html; charset=utf-8");
        assert_eq!(h[header::CONTENT_SECURITY_POLICY], CONTENT_SECURITY_POLICY);
        assert_eq!(h[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
        assert_eq!(h[header::REFERRER_POLICY], "no-referrer");
        assert_eq!(h[header::CACHE_CONTROL], "no-store");
    }
}
