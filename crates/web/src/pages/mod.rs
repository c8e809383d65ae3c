//! Server-rendered pages: the flow executor (`/if/flow/<slug>/`), the login sources' start and
//! callback (`/source/oauth/...`), the user page (`/if/user/`) and the one-time set-up page. Plain HTML forms that work without JavaScript; one layout,
//! one stylesheet, every value escaped.

pub mod flow;
pub mod passkey;
pub mod setup;
pub mod source;
pub mod user;

pub use gatehouse_html::{error_page, escape, layout, page, wide_page};
