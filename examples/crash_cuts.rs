//! Crash consistency at scale (BENCHMARKS.md "Crash consistency"): random `kill -9` cuts while
//! `glance run` enrols and saves a ~10 MB store, and while `glance-host fit` writes a bundle;
//! then a full disk (ENOSPC, a 2 MiB tmpfs) and a read-only one under a save. After every cut
//! the files must hold the old state or the new one, never a broken one; a failed save must
//! be an error reply and a non-zero exit, and leave the old store loadable.
//!
//!   cargo build --bins --examples && target/debug/examples/crash_cuts [STORE_CUTS] [FIT_CUTS]
//!
//! Prints a Markdown table; exits 1 on any broken state. The tmpfs runs need root (mount);
//! without it they print SKIPPED.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::Duration;

use glance::Bundle;
use glance::Precision;
use glance::{Generation, Store};

fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("own path");
    // target/debug/examples/crash_cuts -> target/debug/NAME
    exe.parent()
        .and_then(Path::parent)
        .map(|d| d.join(name))
        .expect("target folder")
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn big_store(sha: &str, n: usize) -> Store {
    let mut s = Store::new(sha, 1280, 2000, Precision::F32);
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    for i in 0..n {
        let v: Vec<f32> = (0..1280)
            .map(|_| (rng.next() % 1000) as f32 / 1000.0)
            .collect();
        s.add(&format!("k{}", i % 3), &v, String::new())
            .expect("add");
    }
    s
}

fn sha() -> String {
    glance::Backbone::load(&glance::ModelSource::Embedded, &Default::default())
        .expect("embedded backbone")
        .identity()
        .sha256
}

fn store_cuts(dir: &Path, rounds: usize, rng: &mut Rng) -> Result<[usize; 2], String> {
    let sha = sha();
    let path = dir.join("cut.store");
    big_store(&sha, 2000)
        .save(&path)
        .map_err(|e| e.to_string())?;
    let coffee = root().join("tests/fixtures/photos/coffee.png");
    let mut seen = [0usize; 2];
    for round in 0..rounds {
        let mut child = Command::new(bin("glance"))
            .args([
                "run",
                "--control",
                "stdin",
                "--heartbeat",
                "0",
                "--loop",
                "--source",
            ])
            .arg(&coffee)
            .arg("--store")
            .arg(&path)
            .args(["--store-precision", "f32", "--store-capacity", "2000"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| e.to_string())?;
        let mut stdin = child.stdin.take().ok_or("no stdin")?;
        let script: String = (0..400)
            .map(|i| format!("enroll k{}\nsave\n", i % 3))
            .collect();
        let _ = stdin.write_all(script.as_bytes());
        std::thread::sleep(Duration::from_millis(300 + rng.next() % 1500));
        let _ = child.kill();
        let _ = child.wait();
        drop(stdin);
        let loaded = Store::load(&path, &sha, 1280, || {
            Store::new(&sha, 1280, 2000, Precision::F32)
        })
        .map_err(|e| format!("store cut {round}: {e}"))?;
        if loaded.store.len() != 2000 {
            return Err(format!(
                "store cut {round}: {} examples",
                loaded.store.len()
            ));
        }
        match loaded.generation {
            Generation::Current => seen[0] += 1,
            Generation::Previous => seen[1] += 1,
            Generation::New => return Err(format!("store cut {round}: both generations gone")),
        }
    }
    Ok(seen)
}

fn fit_cuts(dir: &Path, rounds: usize, rng: &mut Rng) -> Result<[usize; 2], String> {
    let data = dir.join("data");
    for (class, photo) in [("cat", "chelsea.png"), ("coffee", "coffee.png")] {
        let img = glance::decode_file(
            &root().join("tests/fixtures/photos").join(photo),
            Default::default(),
        )
        .map_err(|e| e.to_string())?;
        std::fs::create_dir_all(data.join(class)).map_err(|e| e.to_string())?;
        for i in 0..6u32 {
            let s = 200 + 30 * i;
            image::imageops::crop_imm(&img, 8 * i, 6 * i, s, s)
                .to_image()
                .save(data.join(class).join(format!("{i}.png")))
                .map_err(|e| e.to_string())?;
        }
    }
    let bundle = dir.join("cut.glance");
    let fit = |cut: Option<Duration>| -> Result<(), String> {
        let mut child = Command::new(bin("glance-host"))
            .arg("fit")
            .arg(&data)
            .args(["--split", "0", "--no-cache", "-q", "--out"])
            .arg(&bundle)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| e.to_string())?;
        match cut {
            Some(after) => {
                std::thread::sleep(after);
                let _ = child.kill();
                let _ = child.wait();
            }
            None => {
                let status = child.wait().map_err(|e| e.to_string())?;
                if !status.success() {
                    return Err("the uncut fit failed".into());
                }
            }
        }
        Ok(())
    };
    fit(None)?;
    let first = std::fs::read(&bundle).map_err(|e| e.to_string())?;
    let mut seen = [0usize; 2];
    for round in 0..rounds {
        fit(Some(Duration::from_millis(rng.next() % 2500)))?;
        let bytes = std::fs::read(&bundle).map_err(|e| format!("fit cut {round}: {e}"))?;
        Bundle::from_bytes(&bytes, &bundle).map_err(|e| format!("fit cut {round}: {e}"))?;
        seen[usize::from(bytes != first)] += 1;
    }
    Ok(seen)
}

/// A save on a full or read-only filesystem: an error reply, a non-zero exit, the old store
/// intact. `None`: SKIPPED (no mount).
fn disk_fault(dir: &Path, read_only: bool) -> Option<Result<String, String>> {
    let mnt = dir.join(if read_only { "ro" } else { "full" });
    std::fs::create_dir_all(&mnt).ok()?;
    let ok = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=2m", "tmpfs"])
        .arg(&mnt)
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        return None;
    }
    let result = (|| {
        let sha = sha();
        let path = mnt.join("s.store");
        // ~1.3 MB: one copy fits in 2 MiB, two do not.
        let old = big_store(&sha, 250);
        old.save(&path).map_err(|e| e.to_string())?;
        if read_only {
            let remount = Command::new("mount")
                .args(["-o", "remount,ro"])
                .arg(&mnt)
                .status()
                .map_err(|e| e.to_string())?;
            if !remount.success() {
                return Err("cannot remount read-only".into());
            }
        }
        let mut child = Command::new(bin("glance"))
            .args(["run", "--control", "stdin", "--heartbeat", "0", "--source"])
            .arg(root().join("tests/fixtures/photos/coffee.png"))
            .arg("--loop")
            .arg("--store")
            .arg(&path)
            .args(["--store-precision", "f32", "--store-capacity", "2000"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| e.to_string())?;
        if let Some(mut stdin) = child.stdin.take() {
            let _ = stdin.write_all(b"enroll mug 2\n");
        }
        let out = child.wait_with_output().map_err(|e| e.to_string())?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        let reply = stdout
            .lines()
            .find(|l| l.starts_with("ok:") || l.starts_with("error:"))
            .unwrap_or("")
            .to_owned();
        if !reply.starts_with("error:") || !reply.contains("saving the store failed") {
            return Err(format!(
                "the enrol reply did not report the failed save: {reply:?}"
            ));
        }
        if out.status.success() {
            return Err("the run exited 0 after its final save failed".into());
        }
        let back = Store::read(&path, &sha, 1280).map_err(|e| e.to_string())?;
        if back.len() != old.len() {
            return Err(format!(
                "the store on disk changed: {} examples",
                back.len()
            ));
        }
        Ok(format!(
            "error reply, exit {:?}, old store intact",
            out.status.code()
        ))
    })();
    let _ = Command::new("umount").arg(&mnt).status();
    Some(result)
}

fn main() -> ExitCode {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let (store_rounds, fit_rounds) = (
        args.first().copied().unwrap_or(200),
        args.get(1).copied().unwrap_or(30),
    );
    let tmp = match tempfile::tempdir() {
        Ok(t) => t,
        Err(e) => {
            eprintln!("crash_cuts: {e}");
            return ExitCode::from(2);
        }
    };
    let mut rng = Rng(0x2545_F491_4F6C_DD1D);
    let mut failed = false;
    println!("| run | cuts or case | result |");
    println!("|---|---|---|");
    match store_cuts(tmp.path(), store_rounds, &mut rng) {
        Ok([cur, prev]) => println!(
            "| kill -9 during enrol + save of a 10 MB store | {store_rounds} | all loadable: {cur} current, {prev} previous generation |"
        ),
        Err(e) => {
            failed = true;
            println!("| kill -9 during enrol + save | {store_rounds} | **BROKEN**: {e} |");
        }
    }
    match fit_cuts(tmp.path(), fit_rounds, &mut rng) {
        Ok([old, new]) => println!(
            "| kill -9 during `glance-host fit` writing a bundle | {fit_rounds} | all loadable: {old} old, {new} new |"
        ),
        Err(e) => {
            failed = true;
            println!("| kill -9 during fit | {fit_rounds} | **BROKEN**: {e} |");
        }
    }
    for (name, ro) in [
        ("full disk (ENOSPC, 2 MiB tmpfs)", false),
        ("read-only filesystem", true),
    ] {
        match disk_fault(tmp.path(), ro) {
            Some(Ok(r)) => println!("| save on a {name} | 1 | {r} |"),
            Some(Err(e)) => {
                failed = true;
                println!("| save on a {name} | 1 | **FAILED**: {e} |");
            }
            None => println!(
                "| save on a {name} | - | SKIPPED: cannot mount a tmpfs here (needs root) |"
            ),
        }
    }
    if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}
