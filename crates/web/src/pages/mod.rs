//! Server-rendered pages: the flow executor (`/if/flow/<slug>/`), the login sources' start and
//! callback (`/source/oauth/...`), the user page (`/if/user/`) and the one-time set-up page. Plain HTML forms that work without JavaScript; one layout,
//! one stylesheet. Each page body is an askama template under `crates/web/templates/`, which
//! escapes every value unless told otherwise and is checked when the crate is compiled.

pub mod flow;
pub mod passkey;
pub mod reauth;
pub mod setup;
pub mod source;
pub mod user;

pub use askama::Template;
pub use gatehouse_html::{error_page, layout, page, wide_page, Hint};
