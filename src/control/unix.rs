//! `--control unix:PATH`: the same text and JSON command lines as stdin and the serial link,
//! over a Unix socket that several clients may hold at once (`glance ctl PATH 'enroll mug 10'`,
//! `socat - UNIX-CONNECT:PATH`, a script). Each reply goes back to the client that asked, as
//! one line: JSON for a JSON request, text otherwise.
//!
//! One thread accepts; each client has a thread that only reads lines into the run loop's
//! channel. Replies are written by the run loop with a short write timeout: a client that stops
//! reading is disconnected, never waited for.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::{parse_line, ControlEvent, LineReader};

/// Most clients connected at once; another is told so and closed.
pub(crate) const MAX_CLIENTS: usize = 16;
/// How long a reply may wait for a client to read.
const WRITE_TIMEOUT: Duration = Duration::from_millis(200);

type Clients = Arc<Mutex<HashMap<u64, UnixStream>>>;

fn lock(c: &Clients) -> std::sync::MutexGuard<'_, HashMap<u64, UnixStream>> {
    c.lock().unwrap_or_else(|p| p.into_inner())
}

/// The listening socket; removes its file when dropped.
#[derive(Debug)]
pub(crate) struct UnixControl {
    path: PathBuf,
    clients: Clients,
    stop: Arc<AtomicBool>,
}

impl UnixControl {
    /// Listens on `path`. A socket file left by a glance that is gone is replaced; one that a
    /// running process still answers on is refused.
    pub(crate) fn start(path: &Path, events: Sender<ControlEvent>) -> std::io::Result<Self> {
        if path.exists() {
            if UnixStream::connect(path).is_ok() {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::AddrInUse,
                    "another process is listening on this socket",
                ));
            }
            std::fs::remove_file(path)?;
        }
        let listener = UnixListener::bind(path)?;
        let clients: Clients = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let (c, s) = (Arc::clone(&clients), Arc::clone(&stop));
        std::thread::Builder::new()
            .name("unix-control".into())
            .spawn(move || accept_loop(listener, c, events, s))?;
        log::info!("commands on unix socket {}", path.display());
        Ok(Self {
            path: path.to_path_buf(),
            clients,
            stop,
        })
    }

    /// Sends `line` to `client`; a client that cannot take it within the write timeout, or is
    /// gone, is dropped.
    pub(crate) fn reply(&self, client: u64, line: &[u8]) {
        let mut clients = lock(&self.clients);
        let Some(stream) = clients.get_mut(&client) else {
            return;
        };
        if let Err(e) = stream.write_all(line) {
            log::warn!("control socket: client {client} dropped ({e})");
            let _ = stream.shutdown(std::net::Shutdown::Both);
            clients.remove(&client);
        }
    }
}

impl Drop for UnixControl {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for (_, s) in lock(&self.clients).drain() {
            let _ = s.shutdown(std::net::Shutdown::Both);
        }
        // Wakes the accept loop, which then sees `stop`.
        let _ = UnixStream::connect(&self.path);
        let _ = std::fs::remove_file(&self.path);
    }
}

fn accept_loop(
    listener: UnixListener,
    clients: Clients,
    events: Sender<ControlEvent>,
    stop: Arc<AtomicBool>,
) {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    for conn in listener.incoming() {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let mut stream = match conn {
            Ok(s) => s,
            Err(e) => {
                log::warn!("control socket: {e}");
                std::thread::sleep(Duration::from_millis(100));
                continue;
            }
        };
        if lock(&clients).len() >= MAX_CLIENTS {
            let _ = stream.write_all(
                format!("error: {MAX_CLIENTS} clients are connected already\n").as_bytes(),
            );
            continue;
        }
        let id = NEXT.fetch_add(1, Ordering::Relaxed);
        let writer = match stream
            .try_clone()
            .and_then(|w| w.set_write_timeout(Some(WRITE_TIMEOUT)).map(|()| w))
        {
            Ok(w) => w,
            Err(e) => {
                log::warn!("control socket: {e}");
                continue;
            }
        };
        lock(&clients).insert(id, writer);
        let (c, tx) = (Arc::clone(&clients), events.clone());
        let spawned = std::thread::Builder::new()
            .name(format!("unix-client-{id}"))
            .spawn(move || {
                read_client(stream, id, &tx);
                lock(&c).remove(&id);
            });
        if let Err(e) = spawned {
            log::warn!("control socket: {e}");
            lock(&clients).remove(&id);
        }
    }
}

/// Reads one client's command lines into the run loop's channel until it hangs up.
fn read_client(mut stream: UnixStream, client: u64, events: &Sender<ControlEvent>) {
    let mut lines = LineReader::default();
    let mut buf = [0u8; 4096];
    // Cleared when the run loop is gone.
    let open = std::cell::Cell::new(true);
    let mut send = |line: std::result::Result<String, String>| {
        let json = line.as_ref().is_ok_and(|l| l.trim_start().starts_with('{'));
        let event = match line.and_then(|l| parse_line(&l)) {
            Ok((id, c)) => ControlEvent::Unix {
                client,
                json,
                id,
                command: Ok(c),
            },
            Err(e) => ControlEvent::Unix {
                client,
                json,
                id: None,
                command: Err(e),
            },
        };
        if events.send(event).is_err() {
            open.set(false);
        }
    };
    while open.get() {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => lines.push(&buf[..n], &mut send),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    lines.finish(&mut send);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader};

    #[test]
    fn lines_from_several_clients_arrive_tagged_and_replies_go_back_to_each() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ctl.sock");
        let (tx, rx) = std::sync::mpsc::channel();
        let ctl = UnixControl::start(&path, tx).unwrap();
        let mut a = UnixStream::connect(&path).unwrap();
        let mut b = UnixStream::connect(&path).unwrap();
        a.write_all(b"list\n").unwrap();
        b.write_all(b"{\"command\":\"save\",\"id\":9}\nfrobnicate\n")
            .unwrap();
        let mut got = Vec::new();
        while got.len() < 3 {
            got.push(rx.recv_timeout(Duration::from_secs(10)).unwrap());
        }
        let client_of = |e: &ControlEvent| match e {
            ControlEvent::Unix { client, .. } => *client,
            other => panic!("{other:?}"),
        };
        let a_id = got
            .iter()
            .find(|e| {
                matches!(
                    e,
                    ControlEvent::Unix {
                        json: false,
                        command: Ok(_),
                        ..
                    }
                )
            })
            .map(client_of)
            .unwrap();
        let json: Vec<_> = got
            .iter()
            .filter(|e| matches!(e, ControlEvent::Unix { json: true, .. }))
            .collect();
        assert_eq!(json.len(), 1);
        assert!(matches!(
            json[0],
            ControlEvent::Unix {
                id: Some(9),
                command: Ok(_),
                ..
            }
        ));
        let b_id = client_of(json[0]);
        assert_ne!(a_id, b_id);
        assert!(got.iter().any(|e| matches!(
            e,
            ControlEvent::Unix {
                command: Err(_),
                ..
            }
        )));
        ctl.reply(a_id, b"ok: to a\n");
        ctl.reply(b_id, b"ok: to b\n");
        let mut line = String::new();
        BufReader::new(&a).read_line(&mut line).unwrap();
        assert_eq!(line, "ok: to a\n");
        line.clear();
        BufReader::new(&b).read_line(&mut line).unwrap();
        assert_eq!(line, "ok: to b\n");
        // A second glance on the same socket is refused while this one listens; the file goes
        // with the listener.
        let (tx2, _rx2) = std::sync::mpsc::channel();
        assert!(UnixControl::start(&path, tx2).is_err());
        drop(ctl);
        assert!(!path.exists());
        // A stale socket file (nobody listening) is replaced.
        let stale = UnixListener::bind(&path).unwrap();
        drop(stale);
        let (tx3, _rx3) = std::sync::mpsc::channel();
        assert!(UnixControl::start(&path, tx3).is_ok());
    }
}
