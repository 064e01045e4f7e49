//! The multi-call binary as a CGI program: with `GATEWAY_INTERFACE` set it
//! serves one page request from the running agent, reading the page section
//! and control socket from the agent's config (`NUVOL_CONFIG`).

mod common;

use std::process::Command;

use common::{Agent, TempDir, BIN};

fn cgi(config: &std::path::Path, path: &str, query: &str, user: Option<&str>) -> String {
    let mut cmd = Command::new(BIN);
    cmd.env_clear()
        .env("GATEWAY_INTERFACE", "CGI/1.1")
        .env("REQUEST_METHOD", "GET")
        .env("SCRIPT_NAME", "/cgi-bin/nuvol")
        .env("PATH_INFO", path)
        .env("QUERY_STRING", query)
        .env("HTTP_HOST", "router")
        .env("NUVOL_CONFIG", config);
    if let Some(u) = user {
        cmd.env("REMOTE_USER", u);
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn cgi_mode_serves_the_page_from_the_running_agent() {
    let dir = TempDir::new("cgi");
    let mut a = Agent::new(dir.path(), "web0", "cgi");
    let config = dir.path().join("nuvol");
    std::fs::write(
        &config,
        format!(
            "config agent 'main'\n\toption control '{}'\n\toption state '{}'\nconfig page 'page'\n\tlist allowed_user 'root'\n",
            a.control.display(),
            a.state.display()
        ),
    )
    .unwrap();
    a.start(&["--config".into(), config.display().to_string()]);

    let json = cgi(&config, "/members", "format=json", Some("root"));
    assert!(json.starts_with("Status: 200"), "{json}");
    assert!(json.contains("\"name\":\"web0\""), "{json}");
    let html = cgi(&config, "/", "", Some("root"));
    assert!(
        html.starts_with("Status: 200") && html.contains("web0"),
        "{html}"
    );
    // No authenticated user: the page refuses, still as a proper CGI answer.
    let refused = cgi(&config, "/", "", None);
    assert!(refused.starts_with("Status: 403"), "{refused}");

    // A broken config is a CGI 500 that says why, not a crash.
    let bad = dir.path().join("bad");
    std::fs::write(&bad, "config agent\n\toption bind 'x'\n").unwrap();
    let out = cgi(&bad, "/", "", Some("root"));
    assert!(
        out.starts_with("Status: 500") && out.contains(":2: bind:"),
        "{out}"
    );
}
