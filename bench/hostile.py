#!/usr/bin/env python3
"""Hostile-connection benchmark for ecr-broker (issue 9), driven by bench/hostile.sh.

One process, as root:
  - a tiny fake AWS on 127.0.0.1 (ECR GetAuthorizationToken and STS GetCallerIdentity), so
    the broker has tokens to hand out without any other peer;
  - the broker (`ecr-broker --user`, environment cleared) with `allow_uids = [HOSTILE_UID]`:
    the hostile uid is an allowed caller, the worst case (a refused uid gets fewer places);
  - a forked child that switches to HOSTILE_UID and, for DURATION seconds, opens as many
    connections as it can, sends half a request header on each and then one more header
    byte every second, never finishing; it records when the broker closed each one;
  - the measured caller (root): one GET /v1/token every 20 ms on a fresh connection,
    latency per request;
  - broker VmRSS sampled every 0.25 s during the run and after it.
Prints a JSON summary on stdout. Only loopback TCP and Unix sockets are used.
"""

import argparse
import base64
import http.server
import json
import os
import resource
import selectors
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

HOST = "123456789012.dkr.ecr.us-east-1.amazonaws.com"


class FakeAws(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", "0")))
        target = self.headers.get("x-amz-target", "")
        if "GetAuthorizationToken" in target:
            token = base64.b64encode(b"AWS:bench-token").decode()
            out = json.dumps({"authorizationData": [{
                "authorizationToken": token, "expiresAt": time.time() + 43200,
                "proxyEndpoint": "https://" + HOST}]}).encode()
            ctype = "application/x-amz-json-1.1"
        elif b"GetCallerIdentity" in body:
            out = (b"<GetCallerIdentityResponse><GetCallerIdentityResult><Arn>arn:aws:iam::123456789012:user/bench</Arn>"
                   b"<UserId>AIDA</UserId><Account>123456789012</Account></GetCallerIdentityResult>"
                   b"<ResponseMetadata><RequestId>1</RequestId></ResponseMetadata></GetCallerIdentityResponse>")
            ctype = "text/xml"
        else:
            out, ctype = b"{}", "application/json"
        self.send_response(200)
        self.send_header("content-type", ctype)
        self.send_header("content-length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def get(sock_path, path, timeout=10.0):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.connect(sock_path)
    s.sendall(f"GET {path} HTTP/1.1\r\nHost: broker\r\nConnection: close\r\n\r\n".encode())
    data = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    s.close()
    return int(data.split(b" ", 2)[1]) if data.startswith(b"HTTP/1.1 ") else 0


def hostile(sock_path, uid, duration, out_fd):
    """Child: as `uid`, hold as many partial-header connections as possible."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    os.setgroups([])
    os.setgid(uid)
    os.setuid(uid)
    sel = selectors.DefaultSelector()
    opened = {}          # fd -> (socket, opened_at)
    lifetimes = []       # seconds from open to the broker's close
    attempts = connect_errors = 0
    max_open = 0
    end = time.monotonic() + duration
    last_trickle = time.monotonic()
    while time.monotonic() < end:
        # Open more until the kernel or the broker stops us (at most 200 per round).
        for _ in range(200):
            if len(opened) >= hard - 64:
                break
            attempts += 1
            try:
                s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                s.setblocking(False)
                s.connect(sock_path)
                s.send(b"GET /v1/token?registry=" + HOST.encode() + b" HTTP/1.1\r\nHost: broker\r\nX-Slow: ")
            except (BlockingIOError, OSError):
                connect_errors += 1
                try:
                    s.close()
                except Exception:
                    pass
                break
            opened[s.fileno()] = (s, time.monotonic())
            sel.register(s, selectors.EVENT_READ)
        max_open = max(max_open, len(opened))
        for key, _ in sel.select(timeout=0.05):
            s, at = opened.pop(key.fd)
            sel.unregister(s)
            lifetimes.append(time.monotonic() - at)
            s.close()
        if time.monotonic() - last_trickle >= 1.0:
            last_trickle = time.monotonic()
            for fd, (s, at) in list(opened.items()):
                try:
                    s.send(b"x")
                except OSError:
                    pass
    still_open_at_end = len(opened)
    # Wait for the broker to close what is left (up to 30 s), to measure those too.
    deadline = time.monotonic() + 30
    while opened and time.monotonic() < deadline:
        for key, _ in sel.select(timeout=0.2):
            s, at = opened.pop(key.fd)
            sel.unregister(s)
            lifetimes.append(time.monotonic() - at)
            s.close()
    lifetimes.sort()
    with os.fdopen(out_fd, "w") as f:
        json.dump({
            "connect_attempts": attempts,
            "connect_errors": connect_errors,
            "max_held_at_once": max_open,
            "closed_by_broker": len(lifetimes),
            "never_closed": len(opened),
            "open_when_attack_ended": still_open_at_end,
            "lifetime_p50_s": lifetimes[len(lifetimes) // 2] if lifetimes else None,
            "lifetime_max_s": lifetimes[-1] if lifetimes else None,
            "lifetime_closed_at_once": sum(1 for x in lifetimes if x < 0.1),
        }, f)
    os._exit(0)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--broker", required=True)
    ap.add_argument("--duration", type=float, default=60)
    ap.add_argument("--hostile-uid", type=int, default=65534)
    ap.add_argument("--header-timeout", type=int, default=5)
    ap.add_argument("--soft-fd-limit", type=int, default=1024, help="the broker starts with this soft limit (systemd's default)")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench/hostile.py: must run as root (the hostile side switches uid)")

    aws = http.server.ThreadingHTTPServer(("127.0.0.1", 0), FakeAws)
    threading.Thread(target=aws.serve_forever, daemon=True).start()
    endpoint = f"http://127.0.0.1:{aws.server_address[1]}"

    work = tempfile.mkdtemp(prefix="ecr-hostile-")
    os.chmod(work, 0o755)
    sock_path = os.path.join(work, "broker.sock")
    config = os.path.join(work, "config.toml")
    with open(config, "w") as f:
        f.write(f'socket_mode = "0666"\nallow_uids = [{args.hostile_uid}]\nheader_timeout_secs = {args.header_timeout}\n')
    env = {"PATH": "/usr/bin:/bin", "HOME": work, "AWS_ENDPOINT_URL": endpoint, "AWS_REGION": "us-east-1",
           "AWS_ACCESS_KEY_ID": "AKIAIOSFODNN7EXAMPLE", "AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
           "AWS_EC2_METADATA_DISABLED": "true", "ECR_LOG": "info"}
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)

    def limit():
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(args.soft_fd_limit, hard), hard))

    log = open(os.path.join(work, "broker.log"), "w")
    broker = subprocess.Popen([args.broker, "--user", "--config", config, "--socket", sock_path, "--state",
                               os.path.join(work, "state.json")], env=env, stdout=log, stderr=log, preexec_fn=limit)
    for _ in range(200):
        try:
            if get(sock_path, "/healthz", 1) == 200:
                break
        except OSError:
            pass
        time.sleep(0.05)
    else:
        sys.exit("bench/hostile.py: the broker did not start")
    assert get(sock_path, "/v1/token?registry=" + HOST) == 200, "warm-up token request failed"
    time.sleep(0.5)
    rss_start = rss_kib(broker.pid)

    rss = []
    stop = threading.Event()

    def sample():
        while not stop.is_set():
            rss.append(rss_kib(broker.pid))
            time.sleep(0.25)
    threading.Thread(target=sample, daemon=True).start()

    # The child reports through a pipe (as the hostile uid it cannot write in `work`).
    rfd, wfd = os.pipe()
    child = os.fork()
    if child == 0:
        os.close(rfd)
        try:
            hostile(sock_path, args.hostile_uid, args.duration, wfd)
        finally:
            os._exit(1)
    os.close(wfd)

    latencies, errors = [], 0
    end = time.monotonic() + args.duration
    time.sleep(0.5)  # let the attack take hold first
    while time.monotonic() < end:
        t = time.monotonic()
        try:
            ok = get(sock_path, "/v1/token?registry=" + HOST, 5) == 200
        except OSError:
            ok = False
        dt = time.monotonic() - t
        if ok:
            latencies.append(dt)
        else:
            errors += 1
        time.sleep(max(0.0, 0.02 - dt))
    rss_during_max = max(rss) if rss else 0
    with os.fdopen(rfd) as f:
        report = f.read()
    os.waitpid(child, 0)
    time.sleep(args.header_timeout + 2)
    stop.set()
    rss_after = rss_kib(broker.pid)
    fds_after = len(os.listdir(f"/proc/{broker.pid}/fd"))
    broker_fd_limit = next(line for line in open(f"/proc/{broker.pid}/limits") if line.startswith("Max open files")).split()[3]
    broker.send_signal(signal.SIGTERM)
    broker.wait(20)
    log.close()
    with open(os.path.join(work, "broker.log")) as f:
        log_lines = sum(1 for _ in f)
    attack = json.loads(report)
    latencies.sort()

    def pct(p):
        return round(latencies[min(len(latencies) - 1, int(len(latencies) * p))] * 1000, 2) if latencies else None
    print(json.dumps({
        "duration_s": args.duration,
        "header_timeout_s": args.header_timeout,
        "broker_fd_limit": broker_fd_limit,
        "allowed_requests_ok": len(latencies),
        "allowed_requests_failed": errors,
        "allowed_p50_ms": pct(0.50),
        "allowed_p99_ms": pct(0.99),
        "allowed_max_ms": round(latencies[-1] * 1000, 2) if latencies else None,
        "hostile": attack,
        "rss_start_mib": round(rss_start / 1024, 1),
        "rss_during_max_mib": round(rss_during_max / 1024, 1),
        "rss_after_mib": round(rss_after / 1024, 1),
        "broker_fds_after": fds_after,
        "broker_log_lines": log_lines,
    }, indent=2))
    import shutil
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
