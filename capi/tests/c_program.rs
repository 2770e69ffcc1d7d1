//! A C program, compiled with the system C compiler against the static
//! library and the committed header, classifies real and synthetic
//! captures through the C ABI and gets the verdicts of the Rust library's
//! offline analysis (what `classify` prints), flow by flow.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use skype_dpi::analyze::analyze_file;
use skype_dpi::config::FlowTableConfig;
use skype_dpi::labels::datasets_dir;
use skype_dpi::model::Model;

/// The target directory's profile folder of this test binary.
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    exe.parent()
        .and_then(|d| d.parent())
        .expect("target/<profile>/deps")
        .to_path_buf()
}

/// Builds the static library and the C program once per test run;
/// returns the program.
fn build_c_program() -> PathBuf {
    static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BUILT.get_or_init(build).clone()
}

fn build() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let profile = profile_dir();
    let release = profile.file_name().is_some_and(|n| n == "release");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    let mut build = Command::new(cargo);
    build.args(["build", "-p", "skype-dpi-capi", "--lib"]);
    if release {
        build.arg("--release");
    }
    let status = build.current_dir(root).status().expect("cargo runs");
    assert!(status.success(), "building the C library failed");
    let lib = profile.join("libskype_dpi.a");
    assert!(lib.exists(), "{} missing", lib.display());
    let out = profile.join("classify_c");
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".to_string());
    let status = Command::new(cc)
        .args([
            "-std=c11",
            "-O2",
            "-Wall",
            "-Wextra",
            "-Werror",
            "-D_DEFAULT_SOURCE",
        ])
        .arg("-I")
        .arg(root.join("include"))
        .arg(root.join("tests/c/classify.c"))
        .arg(&lib)
        .args(["-lpcap", "-lpthread", "-ldl", "-lm", "-o"])
        .arg(&out)
        .status()
        .expect("the C compiler runs");
    assert!(status.success(), "compiling the C program failed");
    out
}

/// The Rust library's verdicts, one line per flow as the C program prints.
fn rust_lines(capture: &Path) -> BTreeSet<String> {
    let model = Model::default_model().unwrap();
    let report = analyze_file(capture, None, &model, FlowTableConfig::default()).unwrap();
    report
        .records
        .iter()
        .map(|r| {
            format!(
                "{} {} {} {} {} {}",
                r.key,
                r.first_seen.0,
                r.verdict.label.as_str(),
                r.verdict.kind.map_or("-", |k| k.as_str()),
                r.verdict.via.map_or("-", |v| v.as_str()),
                r.tunnel.map_or("-".to_string(), |t| format!(
                    "{}/{}",
                    t.kind.as_str(),
                    t.id.map_or("-".to_string(), |i| i.to_string())
                ))
            )
        })
        .collect()
}

#[test]
fn the_c_program_gets_the_verdicts_of_classify() {
    let program = build_c_program();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut captures = vec![root.join("../datasets/sample.pcap")];
    let ndpi = datasets_dir().join("ndpi");
    if ndpi.is_dir() {
        for name in [
            "legacy-skype/pcap/skype.pcap",
            "legacy-skype/pcap/skype_no_unknown.pcap",
        ] {
            captures.push(ndpi.join(name));
        }
        for name in [
            "openvpn_nohmac.pcapng",
            "bittorrent.pcap",
            "teams.pcap",
            "rtp.pcapng",
            "vxlan.pcap",
            "ipv6_in_gtp.pcap",
            "gre.pcapng",
        ] {
            captures.push(ndpi.join("pcap").join(name));
        }
    } else if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!(
            "the real captures are missing at {} with CI=true",
            ndpi.display()
        );
    }
    for cap in captures.iter().filter(|c| c.exists()) {
        let out = Command::new(&program)
            .arg(cap)
            .output()
            .expect("C program runs");
        assert!(
            out.status.success(),
            "{}: {}",
            cap.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        let c: BTreeSet<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_string)
            .collect();
        let rust = rust_lines(cap);
        let skype = rust.iter().filter(|l| l.contains(" skype ")).count();
        eprintln!(
            "{}: {} flows, {skype} Skype, same verdicts through the C ABI",
            cap.display(),
            rust.len()
        );
        assert_eq!(c, rust, "{}", cap.display());
    }
}

/// The README's C example compiles (with -Werror) against the committed
/// header and runs on the sample capture.
#[test]
fn the_readme_c_example_runs() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("../README.md")).unwrap();
    let start = readme.find("```c\n").expect("a C example in the README") + 5;
    let end = start + readme[start..].find("```").expect("its end");
    let profile = profile_dir();
    build_c_program();
    let lib = profile.join("libskype_dpi.a");
    let src = profile.join("readme_example.c");
    std::fs::write(&src, &readme[start..end]).unwrap();
    let exe = profile.join("readme_example");
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".to_string());
    let status = Command::new(cc)
        .args([
            "-std=c11",
            "-O2",
            "-Wall",
            "-Wextra",
            "-Werror",
            "-D_DEFAULT_SOURCE",
        ])
        .arg("-I")
        .arg(root.join("include"))
        .arg(&src)
        .arg(&lib)
        .args(["-lpcap", "-lpthread", "-ldl", "-lm", "-o"])
        .arg(&exe)
        .status()
        .expect("the C compiler runs");
    assert!(status.success(), "the README's C example does not compile");
    let out = Command::new(&exe)
        .arg(root.join("../datasets/sample.pcap"))
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.lines().filter(|l| l.starts_with("Skype:")).count() >= 10,
        "{text}"
    );
}
