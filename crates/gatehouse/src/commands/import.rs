//! `import authentik`: read Authentik's API, write the declarative file and its environment
//! file, print the report and, with `--dry-run`, the plan against this Gatehouse.

use anyhow::Context;
use serde_json::json;

use crate::cli::{ClientArgs, ImportAuthentikArgs};
use crate::client::Client;

/// Runs `import authentik`.
pub(super) async fn authentik(args: ImportAuthentikArgs) -> anyhow::Result<()> {
    let source = gatehouse_import::authentik::Client::new(&args.url, &args.token)?;
    let import = gatehouse_import::authentik::import(&source, args.database.as_deref())
        .await
        .context("reading Authentik")?;
    let env_path = import.write(&args.out)?;
    print!("{}", import.report);
    println!(
        "\nWrote {} and {} (the secrets; mode 0600).",
        args.out.display(),
        env_path.display()
    );
    if args.dry_run {
        let client = Client::new(&ClientArgs {
            url: args.gatehouse_url.clone(),
            token: args.gatehouse_token.clone(),
            json: false,
        })?;
        let body = json!({
            "document": import.yaml()?,
            "source": args.out.display().to_string(),
            "prune": false,
            "env": import.env,
        });
        let plan = client.post("/declarative/plan/", &body).await?;
        println!("\nPlan against {}:", args.gatehouse_url);
        super::declarative::print_plan(&client, &plan, &args.out);
    } else {
        println!(
            "Apply it with: set -a; . ./{}; set +a; gatehouse apply -f {}",
            env_path.display(),
            args.out.display()
        );
    }
    Ok(())
}
