//! The deployment files the proxy tests run (`certbound-authz/deploy/`) are the ones the
//! README shows: each appears verbatim in a fenced block of the workspace's README.md.

/// Each deployment file, by its name in `deploy/`.
const FILES: [(&str, &str); 4] = [
    ("nginx-site.conf", include_str!("../deploy/nginx-site.conf")),
    ("traefik.yml", include_str!("../deploy/traefik.yml")),
    (
        "traefik-dynamic.yml",
        include_str!("../deploy/traefik-dynamic.yml"),
    ),
    ("Caddyfile", include_str!("../deploy/Caddyfile")),
];

/// The contents of every fenced block of `markdown` (``` fences, any info string).
fn fenced_blocks(markdown: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in markdown.lines() {
        if line.trim_start().starts_with("```") {
            match current.take() {
                Some(block) => blocks.push(block),
                None => current = Some(String::new()),
            }
        } else if let Some(block) = current.as_mut() {
            block.push_str(line);
            block.push('\n');
        }
    }
    blocks
}

#[test]
fn the_readme_shows_every_deployment_file_verbatim() {
    let readme = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md");
    let readme = std::fs::read_to_string(&readme).expect("README.md");
    let blocks = fenced_blocks(&readme);
    for (name, contents) in FILES {
        assert!(
            blocks.iter().any(|block| block == contents),
            "README.md has no fenced block that is deploy/{name} verbatim"
        );
    }
}

#[test]
fn a_fenced_block_is_read_line_for_line() {
    let markdown = "text\n```nginx\nserver {\n}\n```\nmore\n```\nx\n```\n";
    assert_eq!(fenced_blocks(markdown), ["server {\n}\n", "x\n"]);
}
