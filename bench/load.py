#!/usr/bin/env python3
"""End-to-end load harness for paper-digest (issues #8, #15). Run it through bench/load.sh.

Side by side, against one Postfix `smtp-sink` on 127.0.0.1, round after round:

  paper-digest   `paper-digest run` (release build) mailing N synthetic subscribers their
                 digest of M candidates fetched from a loopback Hugging Face stand-in;
  limit          `smtp-source` sending N messages of the same size at the same concurrency
                 over reused connections (-d): what the sink and the loopback can take;
  peer           rss2email delivering a feed of the same number of entries, of the same
                 size, to the same sink.

  client alone   benches/smtp_floor.rs (with --floor): one prebuilt message of the same size
                 sent N times through paper-digest's SMTP pool: how fast the client can go
                 with nothing ranked, rendered or recorded.

Then paper-digest alone with the file transport at each --scale size (peak RSS at 10k vs
100k shows whether memory is flat in N).

Subscribers follow the personalised mix by default (0-3 of ten topics each, #15; `--mix
wide` is #8's). `--subscribers 5000,10000` runs the SMTP rounds at each size;
`--compare NAME=BINARY` adds another paper-digest build to every SMTP round, run right after
the first, so a before/after pair is measured side by side under the same load.

Every figure is the median of --runs rounds. Wall time is the whole process; the send rate
is taken from the sink's own message counter, sampled every 5 ms, between its first and
last message: it excludes start-up, fetching and ranking for all three programs alike.
Results go to stdout (a Markdown table) and WORKDIR/results.json.
"""
import argparse
import json
import os
import pathlib
import platform
import re
import shutil
import socket
import statistics
import subprocess
import sys
import threading
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
HERE = ROOT / "bench"
NOW = "2024-11-27T09:00:00Z"
FROM = "digest@bench.example.org"


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def tool(name):
    for path in (shutil.which(name), f"/usr/sbin/{name}", f"/usr/lib/postfix/sbin/{name}"):
        if path and os.access(path, os.X_OK):
            return path
    sys.exit(f"load.py: {name} not found; run bench/load.sh, which installs it")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    sys.exit(f"load.py: nothing listens on 127.0.0.1:{port} after {timeout} s")


def gen(*args):
    subprocess.run([sys.executable, str(HERE / "gen.py"), *map(str, args)], check=True, stdout=subprocess.DEVNULL)


def du(paths):
    return sum(p.stat().st_size for p in paths if p.exists())


class Sink:
    """smtp-sink with its running counter (`-c`) in a file, sampled by a thread."""

    def __init__(self, workdir):
        self.port = free_port()
        self.out_path = workdir / "smtp-sink.out"
        self.out = open(self.out_path, "wb")
        user = ["-u", "nobody"] if os.geteuid() == 0 else []
        self.proc = subprocess.Popen(
            [tool("smtp-sink"), "-c", *user, "-m", "1024", f"127.0.0.1:{self.port}", "1024"],
            stdout=self.out,
            stderr=subprocess.STDOUT,
        )
        wait_for_port(self.port)
        self._samples = []
        self._stop = threading.Event()

    def count(self):
        with open(self.out_path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 256))
            tail = f.read().decode("ascii", "replace")
        found = re.findall(r"mesg=(\d+)", tail)
        return int(found[-1]) if found else 0

    def start_sampling(self):
        self._samples = [(time.monotonic(), self.count())]
        self._stop.clear()

        def run():
            while not self._stop.is_set():
                self._samples.append((time.monotonic(), self.count()))
                time.sleep(0.005)

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()

    def stop_sampling(self):
        """Messages received while sampling, and their rate between the first and the last."""
        time.sleep(0.05)
        self._stop.set()
        self._thread.join()
        self._samples.append((time.monotonic(), self.count()))
        base = self._samples[0][1]
        final = self._samples[-1][1]
        n = final - base
        if n < 2:
            return n, None
        first = next(t for t, c in self._samples if c > base)
        last = next(t for t, c in self._samples if c == final)
        return n, (n - 1) / max(last - first, 1e-6)

    def close(self):
        self.proc.terminate()
        self.proc.wait()
        self.out.close()


def timed(cmd, cwd, logfile, env=None):
    """Runs cmd under /usr/bin/time -v; returns wall seconds, peak RSS in MB, exit code."""
    tfile = pathlib.Path(cwd) / "time.txt"
    started = time.monotonic()
    with open(logfile, "wb") as out:
        rc = subprocess.run(
            ["/usr/bin/time", "-v", "-o", str(tfile), *cmd], cwd=cwd, stdout=out, stderr=subprocess.STDOUT, env=env
        ).returncode
    wall = time.monotonic() - started
    text = tfile.read_text()
    rss_kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", text).group(1))
    return wall, rss_kb / 1024, rc


def summary_counts(logfile):
    text = pathlib.Path(logfile).read_text(errors="replace")
    m = re.search(r"digests (\d+) sent / (\d+) failed / (\d+) deferred", text)
    if not m:
        sys.exit(f"load.py: no run summary in {logfile}:\n{text[-2000:]}")
    return tuple(int(x) for x in m.groups())


class Bench:
    def __init__(self, args):
        self.args = args
        self.work = pathlib.Path(args.workdir).resolve()
        if self.work.exists():
            shutil.rmtree(self.work)
        self.work.mkdir(parents=True)
        self.bin = pathlib.Path(args.binary).resolve()
        gen("listings", "--candidates", args.candidates, "--out", self.work / "hf")
        self.server = subprocess.Popen(
            [sys.executable, str(HERE / "serve.py"), str(self.work)], stdout=subprocess.PIPE, text=True
        )
        self.base_url = f"http://127.0.0.1:{self.server.stdout.readline().strip()}"
        self.results = {"machine": machine(), "args": vars(args), "smtp": {}, "file": {}}
        self.floor = pathlib.Path(args.floor).resolve() if args.floor else None
        self.shim = None
        if args.nodelay_shim:
            self.shim = self.work / "nodelay.so"
            subprocess.run(
                ["cc", "-shared", "-fPIC", "-O2", "-o", str(self.shim), str(HERE / "nodelay.c"), "-ldl"], check=True
            )

    def close(self):
        self.server.terminate()
        self.server.wait()

    def config(self, run_dir, subscribers, transport, port=0, concurrency=4):
        run_dir.mkdir(parents=True)
        cfg = run_dir / "paper-digest.toml"
        gen(
            "config",
            "--subscribers", subscribers,
            "--base-url", self.base_url,
            "--transport", transport,
            "--smtp-port", port,
            "--concurrency", concurrency,
            *(["--subscribers-file", "subscribers.jsonl"] if self.args.subscribers_file else []),
            "--mix", self.args.mix,
            "--out", cfg,
        )
        return cfg

    def paper_digest(self, run_dir, cfg, env=None, binary=None):
        cmd = [str(binary or self.bin), "run", "--config", str(cfg), "--now", NOW]
        wall, rss, rc = timed(cmd, run_dir, run_dir / "run.log", env)
        sent, failed, deferred = summary_counts(run_dir / "run.log")
        if rc != 0 or failed or deferred:
            sys.exit(f"load.py: paper-digest exited {rc} ({sent} sent, {failed} failed, {deferred} deferred); see {run_dir}/run.log")
        db = du(run_dir.glob("paper-digest.sqlite3*"))
        return {"wall_s": wall, "rss_mb": rss, "sent": sent, "db_mb": db / 1e6}

    def message_size(self):
        """The mean size of a digest as written by the file transport (a 200-subscriber run)."""
        run_dir = self.work / "calibrate"
        cfg = self.config(run_dir, 200, "file")
        self.paper_digest(run_dir, cfg)
        sizes = [e.stat().st_size for e in os.scandir(run_dir / "outbox")]
        return int(statistics.mean(sizes))

    def smtp_round(self, sink, i, n, c, size):
        row = {}
        variants = [("paper-digest", None, None)]
        variants += [(name, None, path) for name, path in self.args.compare]
        if self.shim:
            variants.append(("paper-digest + TCP_NODELAY shim", {**os.environ, "LD_PRELOAD": str(self.shim)}, None))
        for name, env, binary in variants:
            run_dir = self.work / f"smtp-{n}-c{c}-{i}"
            cfg = self.config(run_dir, n, "smtp", sink.port, c)
            sink.start_sampling()
            r = self.paper_digest(run_dir, cfg, env, binary)
            received, rate = sink.stop_sampling()
            if received != r["sent"]:
                sys.exit(f"load.py: {name} reported {r['sent']} sent but the sink received {received}")
            r.update(received=received, send_rate=rate, e2e_rate=r["sent"] / r["wall_s"])
            row[name] = r
            shutil.rmtree(run_dir)
        # the physical limit: smtp-source, same concurrency, message count and size
        src_dir = self.work / f"source-{n}-c{c}-{i}"
        src_dir.mkdir()
        sink.start_sampling()
        cmd = [tool("smtp-source"), "-d", "-s", str(c), "-m", str(n), "-l", str(size), "-f", FROM,
               "-t", "reader@bench.example.org", f"127.0.0.1:{sink.port}"]
        wall, rss, rc = timed(cmd, src_dir, src_dir / "source.log")
        received, rate = sink.stop_sampling()
        if rc != 0 or received != n:
            sys.exit(f"load.py: smtp-source exited {rc}, sink received {received} of {n}")
        row["smtp-source"] = {"wall_s": wall, "rss_mb": rss, "sent": n, "received": received,
                              "send_rate": rate, "e2e_rate": n / wall}
        # paper-digest's SMTP client alone: one prebuilt message, nothing rendered or recorded
        if self.floor:
            for client in ("ours",):
                cfg = self.config(self.work / f"floor-{client}-{n}-c{c}-{i}", 1, "smtp", sink.port, c)
                sink.start_sampling()
                wall, rss, rc = timed([str(self.floor), str(cfg), str(n), str(size), client], cfg.parent,
                                      cfg.parent / "floor.log")
                received, rate = sink.stop_sampling()
                if rc != 0 or received != n:
                    sys.exit(f"load.py: smtp_floor {client} exited {rc}, sink received {received} of {n}; see {cfg.parent}/floor.log")
                row[f"client alone ({client})"] = {"wall_s": wall, "rss_mb": rss, "sent": n, "received": received,
                                                   "send_rate": rate, "e2e_rate": n / wall}
                shutil.rmtree(cfg.parent)
        # the peer: rss2email, one entry one message, sequentially (its only mode)
        if not self.args.no_peer:
            row["rss2email"] = self.rss2email(sink, i, size)
        return row

    def rss2email(self, sink, i, size):
        k = self.args.peer_items
        if not (self.work / "feed.xml").exists():
            # html-mail keeps the entry as the body, so the item size is about the message size.
            gen("feed", "--items", k, "--item-bytes", max(size - 1500, 1000), "--out", self.work / "feed.xml")
        d = self.work / f"r2e-{i}"
        d.mkdir()
        cfg, data = d / "r2e.cfg", d / "r2e.json"
        cfg.write_text(
            "[DEFAULT]\n"
            f"from = {FROM}\nto = reader@bench.example.org\n"
            "email-protocol = smtp\nsmtp-server = 127.0.0.1\n"
            f"smtp-port = {sink.port}\nsmtp-auth = False\nsmtp-ssl = False\n"
            "html-mail = True\nuse-8bit = True\n"
        )
        r2e = [tool("r2e"), "-c", str(cfg), "-d", str(data)]
        subprocess.run([*r2e, "add", "bench", f"{self.base_url}/feed.xml"], check=True, cwd=d,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        sink.start_sampling()
        wall, rss, rc = timed([*r2e, "run"], d, d / "r2e.log")
        received, rate = sink.stop_sampling()
        if rc != 0 or received != k:
            sys.exit(f"load.py: rss2email exited {rc}, sink received {received} of {k}; see {d}/r2e.log")
        shutil.rmtree(d)
        return {"wall_s": wall, "rss_mb": rss, "sent": k, "received": received, "send_rate": rate, "e2e_rate": k / wall}

    def file_round(self, n, i):
        run_dir = self.work / f"file-{n}-{i}"
        cfg = self.config(run_dir, n, "file")
        # Each round starts with the earlier rounds' files on disk, not still being written
        # back: a round pays for its own writes only.
        os.sync()
        r = self.paper_digest(run_dir, cfg)
        outbox = run_dir / "outbox"
        r["files"] = sum(1 for _ in os.scandir(outbox))
        if r["files"] != r["sent"]:
            sys.exit(f"load.py: {r['sent']} sent but {r['files']} files in {outbox}")
        r["e2e_rate"] = r["sent"] / r["wall_s"]
        # Kept until every file round is done: ext4 skips the inodes of files deleted in the
        # last half minute when it allocates new ones, and scanning past 100,000 of them
        # took more time than writing the next round's files.
        return r

    def run(self):
        a = self.args
        size = self.message_size()
        self.results["message_bytes"] = size
        log(f"mean digest size {size} bytes")
        if not a.no_smtp:
            sink = Sink(self.work)
            try:
                for n in a.subscribers:
                    for c in a.concurrency:
                        rounds = []
                        for i in range(a.runs):
                            log(f"smtp round {i + 1}/{a.runs}, concurrency {c}, {n} subscribers")
                            rounds.append(self.smtp_round(sink, i, n, c, size))
                        self.results["smtp"][f"{n}x{c}"] = {"subscribers": n, "concurrency": c, "rounds": rounds}
            finally:
                sink.close()
        for n in a.scale:
            rounds = []
            for i in range(a.runs):
                log(f"file round {i + 1}/{a.runs}, {n} subscribers")
                rounds.append(self.file_round(n, i))
            self.results["file"][n] = rounds
        for run_dir in self.work.glob("file-*"):
            shutil.rmtree(run_dir)
        (self.work / "results.json").write_text(json.dumps(self.results, indent=1))
        print(report(self.results))


def med(rounds, program, key):
    values = [r[program][key] if program else r[key] for r in rounds]
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def report(res):
    a = res["args"]
    out = [f"Machine: {res['machine']}", f"Message size: {res['message_bytes']} bytes (mean digest)", ""]
    for entry in res["smtp"].values():
        n, c, rounds = entry["subscribers"], entry["concurrency"], entry["rounds"]
        out += [
            f"### SMTP to smtp-sink, concurrency {c}, {n} subscribers x {a['candidates']} candidates "
            f"(median of {len(rounds)})",
            "",
            "| program | messages | wall s | end-to-end msg/s | send-phase msg/s | peak RSS MB |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        others = ("smtp-source", "client alone (ours)", "rss2email")
        progs = [p for p in rounds[0] if p not in others] + [p for p in others if p in rounds[0]]
        for p in progs:
            out.append(
                f"| {p} | {rounds[0][p]['sent']} | {med(rounds, p, 'wall_s'):.2f} | {med(rounds, p, 'e2e_rate'):.0f} "
                f"| {med(rounds, p, 'send_rate'):.0f} | {med(rounds, p, 'rss_mb'):.0f} |"
            )
        pd_send, pd_e2e = med(rounds, "paper-digest", "send_rate"), med(rounds, "paper-digest", "e2e_rate")
        lim = med(rounds, "smtp-source", "send_rate")
        for name, _ in a.get("compare") or []:
            ratio = pd_send / med(rounds, name, "send_rate")
            out.append(f"- paper-digest / {name} (send phase, side by side): {ratio:.2f}")
        out += ["", f"- paper-digest / smtp-source (send phase): **{pd_send / lim:.2f}** (target >= 0.80)"]
        out.append(f"- paper-digest / smtp-source (end to end): {pd_e2e / med(rounds, 'smtp-source', 'e2e_rate'):.2f}")
        if "client alone (ours)" in progs:
            floor = med(rounds, "client alone (ours)", "send_rate")
            out.append(f"- paper-digest's SMTP client alone / smtp-source (send phase): {floor / lim:.2f}")
            out.append(f"- paper-digest / its SMTP client alone (send phase): {pd_send / floor:.2f}")
        if "rss2email" in progs:
            peer_send, peer_e2e = med(rounds, "rss2email", "send_rate"), med(rounds, "rss2email", "e2e_rate")
            out.append(f"- paper-digest / rss2email (send phase): **{pd_send / peer_send:.1f}x** (target >= 10x)")
            out.append(f"- paper-digest / rss2email (end to end): {pd_e2e / peer_e2e:.1f}x")
        shim = "paper-digest + TCP_NODELAY shim"
        if shim in progs:
            out.append(f"- with the TCP_NODELAY shim / smtp-source (send phase): {med(rounds, shim, 'send_rate') / lim:.2f}")
            if "rss2email" in progs:
                out.append(f"- with the TCP_NODELAY shim / rss2email (send phase): {med(rounds, shim, 'send_rate') / peer_send:.1f}x")
        out.append(f"- paper-digest database after the run: {med(rounds, 'paper-digest', 'db_mb'):.1f} MB")
        out.append("")
    if res["file"]:
        out += [
            f"### File transport, {a['candidates']} candidates (median of {a['runs']})",
            "",
            "| subscribers | wall s | digests/s | peak RSS MB | database MB |",
            "|---:|---:|---:|---:|---:|",
        ]
        for n, rounds in res["file"].items():
            out.append(
                f"| {n} | {med(rounds, None, 'wall_s'):.2f} | {med(rounds, None, 'e2e_rate'):.0f} "
                f"| {med(rounds, None, 'rss_mb'):.0f} | {med(rounds, None, 'db_mb'):.1f} |"
            )
    return "\n".join(out)


def machine():
    cpu = "unknown CPU"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{os.cpu_count()} x {cpu}, {mem:.0f} GB RAM, {platform.system()} {platform.release()}"


def ints(text):
    return [int(x) for x in text.split(",") if x]


def named_binary(text):
    name, sep, path = text.partition("=")
    if not sep or not name or not os.access(path, os.X_OK):
        raise argparse.ArgumentTypeError(f"expected NAME=BINARY with an executable BINARY, got {text!r}")
    return name, str(pathlib.Path(path).resolve())


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--binary", default=str(ROOT / "target" / "release" / "paper-digest"))
    p.add_argument("--workdir", default="/tmp/paper-digest-bench")
    p.add_argument(
        "--subscribers", type=ints, default=[10000], help="subscribers in the SMTP rounds, comma-separated, e.g. 5000,10000"
    )
    p.add_argument(
        "--mix", choices=["personalised", "wide"], default="personalised",
        help="subscribers' topics (bench/gen.py config --mix): 0-3 of ten (#15) or 1-3 of 24 (#8)",
    )
    p.add_argument(
        "--compare", type=named_binary, action="append", default=[], metavar="NAME=BINARY",
        help="another paper-digest binary to run in every SMTP round, e.g. before=/tmp/paper-digest-before",
    )
    p.add_argument("--candidates", type=int, default=1000)
    p.add_argument("--concurrency", type=ints, default=[4], help="comma-separated, e.g. 1,4")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--peer-items", type=int, default=2000, help="feed entries rss2email delivers per round")
    p.add_argument("--scale", type=ints, default=[10000, 100000], help="file-transport sizes, comma-separated")
    p.add_argument("--no-peer", action="store_true", help="skip rss2email")
    p.add_argument(
        "--floor",
        help="the smtp_floor bench binary (benches/smtp_floor.rs; bench/load.sh builds it): "
        "paper-digest's SMTP client alone, in every SMTP round",
    )
    p.add_argument("--no-smtp", action="store_true", help="only the file-transport rounds")
    p.add_argument(
        "--inline-subscribers",
        dest="subscribers_file",
        action="store_false",
        help="list subscribers as [[subscribers]] tables in the TOML instead of a subscribers_file (JSON Lines)",
    )
    p.add_argument(
        "--nodelay-shim",
        action="store_true",
        help="also run paper-digest with bench/nodelay.c preloaded (TCP_NODELAY on its sockets)",
    )
    args = p.parse_args()
    bench = Bench(args)
    try:
        bench.run()
    finally:
        bench.close()


if __name__ == "__main__":
    main()
