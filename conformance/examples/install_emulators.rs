//! Installs the emulators the suite starts (ministack into a venv under `target/`), so a
//! CI log shows the installation as its own step. The tests install on first use too.

fn main() {
    let bin = kmssh_conformance::ministack::install();
    println!(
        "ministack {} ready: {}",
        kmssh_conformance::ministack::MINISTACK_VERSION,
        bin.display()
    );
}
