//! `broker-load`: a load generator for `ecr-broker`, speaking HTTP/1.1 with keep-alive
//! directly on `tokio::net::UnixStream` (no HTTP client library: the request is a fixed byte
//! string and the answer is read by its `content-length`, so the generator costs as little
//! CPU as possible on a machine it shares with the broker).
//!
//! Usage:
//!   broker-load load --socket S --path P --clients N --seconds T [--threads K] [--warmup W]
//!       N connections, each doing sequential GETs of P for T seconds (after W seconds of
//!       unmeasured warm-up); prints one JSON line: clients, requests, errors, non_200,
//!       req_per_s, p50_ms, p90_ms, p99_ms, p999_ms, max_ms, connect_retries.
//!       With --rate R (total requests/s, spread evenly over the clients) the load is open
//!       loop: each client sends on a fixed schedule; latency counts from the send, or from
//!       the scheduled time if the previous answer made it late (no coordinated omission);
//!       without it, closed loop (next request as soon
//!       as the answer is in), where mean latency = clients / throughput (Little's law).
//!   broker-load once --socket S --paths-file F [--clients N] [--threads K]
//!       GETs each line of F once (N at a time); prints a JSON line with counts by status.
//!   broker-load get --socket S --path P
//!       One GET: prints the status on the first line and the body after it (exit 1 if none).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

struct Args {
    cmd: String,
    socket: PathBuf,
    path: String,
    paths_file: Option<PathBuf>,
    clients: usize,
    seconds: f64,
    warmup: f64,
    threads: usize,
    /// Open loop: the total requests/s spread over the clients (0: closed loop, as fast as answers come).
    rate: f64,
}

fn parse_args() -> Args {
    let mut it = std::env::args().skip(1);
    let cmd = it.next().unwrap_or_else(|| usage("no command"));
    let mut a = Args {
        cmd,
        socket: PathBuf::new(),
        path: "/healthz".into(),
        paths_file: None,
        clients: 1,
        seconds: 10.0,
        warmup: 1.0,
        threads: 2,
        rate: 0.0,
    };
    while let Some(flag) = it.next() {
        let mut val = || it.next().unwrap_or_else(|| usage(&format!("{flag} needs a value")));
        match flag.as_str() {
            "--socket" => a.socket = val().into(),
            "--path" => a.path = val(),
            "--paths-file" => a.paths_file = Some(val().into()),
            "--clients" => a.clients = val().parse().unwrap_or_else(|_| usage("--clients N")),
            "--seconds" => a.seconds = val().parse().unwrap_or_else(|_| usage("--seconds T")),
            "--warmup" => a.warmup = val().parse().unwrap_or_else(|_| usage("--warmup W")),
            "--threads" => a.threads = val().parse().unwrap_or_else(|_| usage("--threads K")),
            "--rate" => a.rate = val().parse().unwrap_or_else(|_| usage("--rate R")),
            other => usage(&format!("unknown flag {other}")),
        }
    }
    if a.socket.as_os_str().is_empty() {
        usage("--socket is required");
    }
    a
}

fn usage(why: &str) -> ! {
    eprintln!("broker-load: {why}\nusage: broker-load load|once|get --socket S [--path P] [--paths-file F] [--clients N] [--seconds T] [--warmup W] [--threads K]");
    std::process::exit(2);
}

/// One keep-alive connection.
struct Conn {
    stream: UnixStream,
    buf: Vec<u8>,
}

impl Conn {
    /// Connect, retrying while the listen backlog is full (EAGAIN on a Unix socket).
    async fn open(socket: &PathBuf, retries: &AtomicU64) -> std::io::Result<Conn> {
        let mut delay = Duration::from_millis(1);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match UnixStream::connect(socket).await {
                Ok(stream) => return Ok(Conn { stream, buf: Vec::with_capacity(4096) }),
                Err(e) if Instant::now() < deadline && e.kind() != std::io::ErrorKind::NotFound => {
                    retries.fetch_add(1, Relaxed);
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_millis(50));
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Send `request`, read one answer: (status, body). Errors on a malformed answer or EOF.
    async fn roundtrip(&mut self, request: &[u8]) -> std::io::Result<(u16, Vec<u8>)> {
        self.stream.write_all(request).await?;
        let bad = |m: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, m.to_string());
        let head_end = loop {
            if let Some(i) = find(&self.buf, b"\r\n\r\n") {
                break i;
            }
            if self.read_more().await? == 0 {
                return Err(bad("connection closed before the answer's head"));
            }
        };
        let head = std::str::from_utf8(&self.buf[..head_end]).map_err(|_| bad("head is not UTF-8"))?;
        let status: u16 = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).ok_or_else(|| bad("no status"))?;
        let mut len = None;
        for line in head.split("\r\n").skip(1) {
            if let Some((k, v)) = line.split_once(':') {
                if k.eq_ignore_ascii_case("content-length") {
                    len = v.trim().parse::<usize>().ok();
                } else if k.eq_ignore_ascii_case("transfer-encoding") {
                    return Err(bad("chunked answers are not supported by this load generator"));
                }
            }
        }
        let len = len.ok_or_else(|| bad("no content-length"))?;
        let total = head_end + 4 + len;
        while self.buf.len() < total {
            if self.read_more().await? == 0 {
                return Err(bad("connection closed inside the body"));
            }
        }
        let body = self.buf[head_end + 4..total].to_vec();
        self.buf.drain(..total);
        Ok((status, body))
    }

    async fn read_more(&mut self) -> std::io::Result<usize> {
        let old = self.buf.len();
        self.buf.resize(old + 8192, 0);
        let n = self.stream.read(&mut self.buf[old..]).await;
        self.buf.truncate(old + *n.as_ref().unwrap_or(&0));
        n
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn request_bytes(path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: ecr-broker\r\n\r\n").into_bytes()
}

#[derive(Default)]
struct ClientResult {
    latencies_us: Vec<u32>,
    errors: u64,
    non_200: u64,
}

async fn load(a: &Args) -> String {
    let retries = Arc::new(AtomicU64::new(0));
    let request: Arc<Vec<u8>> = Arc::new(request_bytes(&a.path));
    // Connect everyone first, then start together.
    let mut conns = Vec::with_capacity(a.clients);
    let mut opening = Vec::with_capacity(a.clients);
    for _ in 0..a.clients {
        let (socket, retries) = (a.socket.clone(), retries.clone());
        opening.push(tokio::spawn(async move { Conn::open(&socket, &retries).await }));
    }
    for o in opening {
        match o.await.expect("connect task") {
            Ok(c) => conns.push(c),
            Err(e) => {
                eprintln!("broker-load: connect failed: {e}");
                std::process::exit(1);
            }
        }
    }
    let measuring = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let start_gate = Arc::new(tokio::sync::Barrier::new(a.clients + 1));
    let mut tasks = Vec::with_capacity(a.clients);
    // Open loop: each client sends every `interval`, starting at a spread-out offset. Latency
    // counts from the send, or from the scheduled send time when the previous answer made
    // the client late (so slow answers are not hidden: no coordinated omission).
    let interval = (a.rate > 0.0).then(|| Duration::from_secs_f64(a.clients as f64 / a.rate));
    for (i, mut conn) in conns.into_iter().enumerate() {
        let (request, measuring, stop, gate) = (request.clone(), measuring.clone(), stop.clone(), start_gate.clone());
        let offset = interval.map(|iv| iv.mul_f64((i as f64 * 0.618_033_988_7).fract()));
        tasks.push(tokio::spawn(async move {
            let mut r = ClientResult { latencies_us: Vec::with_capacity(4096), ..Default::default() };
            gate.wait().await;
            let mut next = Instant::now() + offset.unwrap_or_default();
            while !stop.load(Relaxed) {
                let t0 = match interval {
                    Some(iv) => {
                        let scheduled = next;
                        next += iv;
                        if Instant::now() >= scheduled {
                            // Late because the previous answer took longer than the interval:
                            // count from when the request should have gone out.
                            scheduled
                        } else {
                            // On time: count from the actual send (tokio's 1 ms timer wheel
                            // wakes up to 1 ms late; that is the generator's, not the broker's).
                            tokio::time::sleep_until(scheduled.into()).await;
                            Instant::now()
                        }
                    }
                    None => Instant::now(),
                };
                let outcome = conn.roundtrip(&request).await;
                let us = t0.elapsed().as_micros().min(u32::MAX as u128) as u32;
                let counted = measuring.load(Relaxed) && !stop.load(Relaxed);
                match outcome {
                    Ok((status, _)) => {
                        if counted {
                            r.latencies_us.push(us);
                            if status != 200 {
                                r.non_200 += 1;
                            }
                        }
                    }
                    Err(e) => {
                        if counted {
                            r.errors += 1;
                        }
                        if r.errors < 3 {
                            eprintln!("broker-load: request failed: {e}");
                        }
                        // A broken connection: reopen it.
                        let retries = AtomicU64::new(0);
                        match Conn::open(&PathBuf::from(conn_path()), &retries).await {
                            Ok(c) => conn = c,
                            Err(_) => break,
                        }
                    }
                }
            }
            r
        }));
    }
    start_gate.wait().await;
    tokio::time::sleep(Duration::from_secs_f64(a.warmup)).await;
    measuring.store(true, Relaxed);
    let t0 = Instant::now();
    tokio::time::sleep(Duration::from_secs_f64(a.seconds)).await;
    stop.store(true, Relaxed);
    let elapsed = t0.elapsed().as_secs_f64();
    let mut all: Vec<u32> = Vec::new();
    let (mut errors, mut non_200) = (0, 0);
    for t in tasks {
        let r = t.await.expect("client task");
        all.extend_from_slice(&r.latencies_us);
        errors += r.errors;
        non_200 += r.non_200;
    }
    all.sort_unstable();
    let pct = |p: f64| -> f64 {
        if all.is_empty() {
            return f64::NAN;
        }
        let i = ((p / 100.0) * all.len() as f64).ceil() as usize;
        all[i.clamp(1, all.len()) - 1] as f64 / 1000.0
    };
    format!(
        "{{\"clients\":{},\"rate\":{},\"threads\":{},\"seconds\":{:.3},\"requests\":{},\"errors\":{},\"non_200\":{},\"req_per_s\":{:.1},\"p50_ms\":{:.3},\"p90_ms\":{:.3},\"p99_ms\":{:.3},\"p999_ms\":{:.3},\"max_ms\":{:.3},\"connect_retries\":{}}}",
        a.clients,
        a.rate,
        a.threads,
        elapsed,
        all.len(),
        errors,
        non_200,
        all.len() as f64 / elapsed,
        pct(50.0),
        pct(90.0),
        pct(99.0),
        pct(99.9),
        all.last().map(|v| *v as f64 / 1000.0).unwrap_or(f64::NAN),
        retries.load(Relaxed)
    )
}

/// The socket path for reconnects (set once in main).
static SOCKET: std::sync::OnceLock<String> = std::sync::OnceLock::new();
fn conn_path() -> String {
    SOCKET.get().cloned().unwrap_or_default()
}

async fn once(a: &Args) -> String {
    let file = a.paths_file.as_ref().unwrap_or_else(|| usage("once needs --paths-file"));
    let text = std::fs::read_to_string(file).unwrap_or_else(|e| usage(&format!("{}: {e}", file.display())));
    let paths: Vec<String> = text.lines().map(str::trim).filter(|l| !l.is_empty()).map(str::to_string).collect();
    let queue = Arc::new(std::sync::Mutex::new(paths.into_iter().collect::<std::collections::VecDeque<_>>()));
    let retries = Arc::new(AtomicU64::new(0));
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..a.clients.max(1) {
        let (queue, socket, retries) = (queue.clone(), a.socket.clone(), retries.clone());
        tasks.push(tokio::spawn(async move {
            let mut counts: BTreeMap<String, u64> = BTreeMap::new();
            let mut conn = Conn::open(&socket, &retries).await.expect("connect");
            loop {
                let Some(path) = queue.lock().unwrap().pop_front() else { break };
                match conn.roundtrip(&request_bytes(&path)).await {
                    Ok((status, _)) => *counts.entry(status.to_string()).or_default() += 1,
                    Err(_) => {
                        *counts.entry("error".into()).or_default() += 1;
                        conn = Conn::open(&socket, &retries).await.expect("reconnect");
                    }
                }
            }
            counts
        }));
    }
    let mut total: BTreeMap<String, u64> = BTreeMap::new();
    for t in tasks {
        for (k, v) in t.await.expect("task") {
            *total.entry(k).or_default() += v;
        }
    }
    let by_status: Vec<String> = total.iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
    format!("{{\"seconds\":{:.3},\"by_status\":{{{}}}}}", t0.elapsed().as_secs_f64(), by_status.join(","))
}

fn main() {
    let a = parse_args();
    let _ = SOCKET.set(a.socket.to_string_lossy().into_owned());
    let rt = if a.threads <= 1 {
        tokio::runtime::Builder::new_current_thread().enable_all().build()
    } else {
        tokio::runtime::Builder::new_multi_thread().worker_threads(a.threads).enable_all().build()
    }
    .expect("tokio runtime");
    let out = rt.block_on(async {
        match a.cmd.as_str() {
            "load" => load(&a).await,
            "once" => once(&a).await,
            "get" => {
                let retries = AtomicU64::new(0);
                let mut c = match Conn::open(&a.socket, &retries).await {
                    Ok(c) => c,
                    Err(e) => {
                        eprintln!("broker-load: {e}");
                        std::process::exit(1);
                    }
                };
                match c.roundtrip(&request_bytes(&a.path)).await {
                    Ok((status, body)) => format!("{status}\n{}", String::from_utf8_lossy(&body)),
                    Err(e) => {
                        eprintln!("broker-load: {e}");
                        std::process::exit(1);
                    }
                }
            }
            other => usage(&format!("unknown command {other}")),
        }
    });
    println!("{out}");
}
