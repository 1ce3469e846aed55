//! The downloader against a local HTTP server: a good transfer lands under its name; a wrong
//! checksum, a short transfer or an HTTP error leave nothing behind.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};

use training::DataError;
use training::download::{Remote, fetch};

/// Serves one request per entry of `replies` (status line, declared length, body) on a local
/// port; returns the base URL.
fn serve(replies: Vec<(&'static str, usize, Vec<u8>)>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for (status, declared, body) in replies {
            let (mut stream, _) = listener.accept().unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                line.clear();
            }
            let head = format!(
                "HTTP/1.1 {status}\r\nContent-Length: {declared}\r\nConnection: close\r\n\r\n"
            );
            stream.write_all(head.as_bytes()).ok();
            stream.write_all(&body).ok();
        }
    });
    format!("http://{addr}")
}

fn md5_hex(bytes: &[u8]) -> String {
    use md5::{Digest, Md5};
    Md5::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("bt-dl-{name}-{}", std::process::id()));
    std::fs::remove_dir_all(&d).ok();
    d
}

fn leak(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}

fn remote(url: String, body: &[u8], md5: String) -> Remote {
    Remote {
        url: leak(url),
        file: "data.bin",
        size: body.len() as u64,
        md5: leak(md5),
    }
}

fn entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|r| {
            r.filter_map(|e| e.ok()?.file_name().into_string().ok())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

#[test]
fn a_good_download_lands_atomically_and_is_not_fetched_twice() {
    let body: Vec<u8> = (0..300_000u32).map(|i| (i % 253) as u8).collect();
    let base = serve(vec![("200 OK", body.len(), body.clone())]);
    let r = remote(format!("{base}/data.bin"), &body, md5_hex(&body));
    let dir = scratch("good");
    let path = fetch(&r, &dir).unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), body);
    assert_eq!(entries(&dir), ["data.bin"], "no temporary file left");
    // The server is gone (it served one request): a second fetch must not ask it.
    assert_eq!(fetch(&r, &dir).unwrap(), path);
}

#[test]
fn a_wrong_checksum_leaves_nothing() {
    let body = b"hello, not the published file".to_vec();
    let base = serve(vec![("200 OK", body.len(), body.clone())]);
    let r = remote(format!("{base}/data.bin"), &body, "0".repeat(32));
    let dir = scratch("md5");
    let e = fetch(&r, &dir).unwrap_err();
    assert!(matches!(e, DataError::Download { .. }), "{e:?}");
    assert!(e.to_string().contains("MD5"), "{e}");
    assert!(entries(&dir).is_empty(), "{:?}", entries(&dir));
}

#[test]
fn a_short_transfer_leaves_nothing() {
    let body: Vec<u8> = vec![7; 10_000];
    // The server declares the full length but closes after 4000 bytes.
    let base = serve(vec![("200 OK", body.len(), body[..4000].to_vec())]);
    let r = remote(format!("{base}/data.bin"), &body, md5_hex(&body));
    let dir = scratch("short");
    let e = fetch(&r, &dir).unwrap_err();
    assert!(matches!(e, DataError::Download { .. }), "{e:?}");
    assert!(entries(&dir).is_empty(), "{:?}", entries(&dir));
}

#[test]
fn a_bigger_file_than_published_is_refused() {
    let published = vec![1u8; 1000];
    let served = vec![1u8; 5000];
    let base = serve(vec![("200 OK", served.len(), served)]);
    let r = remote(format!("{base}/data.bin"), &published, md5_hex(&published));
    let dir = scratch("big");
    assert!(fetch(&r, &dir).is_err());
    assert!(entries(&dir).is_empty(), "{:?}", entries(&dir));
}

#[test]
fn an_http_error_is_reported_with_the_url() {
    let base = serve(vec![("404 Not Found", 9, b"not found".to_vec())]);
    let r = remote(format!("{base}/missing.bin"), b"x", md5_hex(b"x"));
    let dir = scratch("404");
    let e = fetch(&r, &dir).unwrap_err();
    assert!(
        e.to_string().contains("missing.bin") && e.to_string().contains("404"),
        "{e}"
    );
    assert!(entries(&dir).is_empty());
}
