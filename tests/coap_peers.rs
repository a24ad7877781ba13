//! ferry's CoAP endpoint against real peers on loopback UDP: libcoap's example client and
//! server, and aiocoap. Each test skips (with a message) when its tool is missing, unless
//! FERRY_REQUIRE_TOOLS=1, when it fails instead.

use std::io::{BufRead, BufReader, Read};
use std::net::{SocketAddr, UdpSocket};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ferry::coap::udp::{self, ShellHandle, UdpPeer};
use ferry::coap::{content_format, Config, Endpoint, Event, FetchOptions, Request, Router, StaticResource};
use tokio::runtime::Runtime;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

const IMAGE_LEN: usize = 200 * 1024;

fn image() -> Vec<u8> {
    // Not periodic in any block size, so a misplaced block shows.
    (0..IMAGE_LEN as u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect()
}

/// Prints past libtest's output capture, so skips show in CI logs.
fn skip(msg: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{msg}");
}

/// True if `cmd` can be run; otherwise skip (or fail under FERRY_REQUIRE_TOOLS=1).
fn have(cmd: &str, args: &[&str], what: &str) -> bool {
    let ok =
        Command::new(cmd).args(args).stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok_and(|s| s.success());
    if !ok {
        if std::env::var("FERRY_REQUIRE_TOOLS").as_deref() == Ok("1") {
            panic!("{what} is required (FERRY_REQUIRE_TOOLS=1) but `{cmd}` is not usable");
        }
        skip(&format!("SKIP: {what} not available (`{cmd}`); install it to run this test"));
    }
    ok
}

fn have_libcoap_client() -> bool {
    // coap-client prints its usage and exits non-zero without a URI; spawning is what matters.
    have_spawnable("coap-client-notls", "libcoap's coap-client-notls (apt-get install libcoap3-bin)")
}

/// Whether `cmd` is an executable on PATH (never runs it: coap-server would not return).
fn have_spawnable(cmd: &str, what: &str) -> bool {
    let ok =
        std::env::var_os("PATH").is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(cmd).is_file()));
    if !ok {
        if std::env::var("FERRY_REQUIRE_TOOLS").as_deref() == Ok("1") {
            panic!("{what} is required (FERRY_REQUIRE_TOOLS=1) but `{cmd}` is not on PATH");
        }
        skip(&format!("SKIP: {what} not available (`{cmd}`)"));
    }
    ok
}

fn have_aiocoap() -> bool {
    have("python3", &["-c", "import aiocoap"], "aiocoap (pip install aiocoap)")
}

/// ferry's UDP shell on [::1] with an ephemeral port, in its own runtime.
struct Ferry {
    rt: Runtime,
    handle: ShellHandle,
    events: mpsc::Receiver<Event<UdpPeer>>,
    cancel: CancellationToken,
}

impl Ferry {
    fn start(router: Router, cfg: Config) -> Self {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap_or_else(|e| panic!("runtime: {e}"));
        let ep = Endpoint::new(cfg, router);
        let addr: SocketAddr = "[::1]:0".parse().unwrap_or_else(|e| panic!("{e}"));
        let (shell, handle, events) = rt.block_on(udp::bind(&[addr], ep)).unwrap_or_else(|e| panic!("bind: {e}"));
        let cancel = CancellationToken::new();
        rt.spawn(shell.run(cancel.clone()));
        Self { rt, handle, events, cancel }
    }

    fn port(&self) -> u16 {
        self.handle.local_addrs()[0].port()
    }

    fn uri(&self, path: &str) -> String {
        format!("coap://[::1]:{}/{path}", self.port())
    }
}

impl Drop for Ferry {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

fn image_server() -> Ferry {
    let mut r = Router::new();
    r.insert_static("fw/image.bin", StaticResource::new(image(), content_format::OCTET_STREAM));
    Ferry::start(r, Config::default())
}

fn run_with_timeout(mut cmd: Command, secs: u32) -> std::process::Output {
    let prog = format!("{cmd:?}");
    let mut wrapped = Command::new("timeout");
    wrapped.arg(secs.to_string()).arg(cmd.get_program()).args(cmd.get_args());
    let _ = &mut cmd;
    wrapped.output().unwrap_or_else(|e| panic!("running {prog}: {e}"))
}

fn libcoap_get(block: u32) {
    if !have_libcoap_client() {
        return;
    }
    let ferry = image_server();
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let out = dir.path().join("image.bin");
    let mut cmd = Command::new("coap-client-notls");
    cmd.args(["-m", "get", "-b", &block.to_string(), "-o"]).arg(&out).arg(ferry.uri("fw/image.bin"));
    let res = run_with_timeout(cmd, 120);
    assert!(res.status.success(), "coap-client failed: {res:?}");
    let got = std::fs::read(&out).unwrap_or_else(|e| panic!("reading {out:?}: {e}"));
    assert_eq!(got.len(), IMAGE_LEN);
    assert!(got == image(), "libcoap got different bytes");
    let m = ferry.rt.block_on(ferry.handle.with(|ep, _| ep.metrics().clone())).unwrap_or_else(|e| panic!("{e}"));
    assert!(m.block2_blocks_served >= (IMAGE_LEN / block as usize) as u64);
}

#[test]
fn libcoap_client_fetches_at_64() {
    libcoap_get(64);
}

#[test]
fn libcoap_client_fetches_at_1024() {
    libcoap_get(1024);
}

const AIOCOAP_GET: &str = r#"
import asyncio, sys
from aiocoap import Context, Message, GET
async def main():
    ctx = await Context.create_client_context()
    r = await asyncio.wait_for(ctx.request(Message(code=GET, uri=sys.argv[1])).response, 100)
    if not r.code.is_successful():
        sys.exit("response code %s" % r.code)
    sys.stdout.buffer.write(r.payload)
    await ctx.shutdown()
asyncio.run(main())
"#;

#[test]
fn aiocoap_client_fetches() {
    if !have_aiocoap() {
        return;
    }
    let ferry = image_server();
    let mut cmd = Command::new("python3");
    cmd.args(["-c", AIOCOAP_GET, &ferry.uri("fw/image.bin")]);
    let res = run_with_timeout(cmd, 120);
    assert!(res.status.success(), "aiocoap client failed: {}", String::from_utf8_lossy(&res.stderr));
    assert_eq!(res.stdout.len(), IMAGE_LEN);
    assert!(res.stdout == image(), "aiocoap got different bytes");
}

const AIOCOAP_SERVER: &str = r#"
import asyncio, sys
import aiocoap, aiocoap.resource as resource
N = int(sys.argv[2])
BODY = bytes(((i * 2654435761) & 0xffffffff) >> 13 & 0xff for i in range(N))
class Image(resource.Resource):
    async def render_get(self, request):
        return aiocoap.Message(payload=BODY)
async def main():
    site = resource.Site()
    site.add_resource(['fw', 'image.bin'], Image())
    await aiocoap.Context.create_server_context(site, bind=('::1', int(sys.argv[1])))
    print('ready', flush=True)
    await asyncio.sleep(120)
asyncio.run(main())
"#;

/// Polls the server with a GET of its index until it answers (at most ~10 s).
fn wait_for_libcoap_server(port: u16) {
    for _ in 0..20 {
        let mut ping = Command::new("coap-client-notls");
        ping.args(["-m", "get", "-B", "1", &format!("coap://[::1]:{port}/")]);
        let out = run_with_timeout(ping, 5);
        if out.status.success() && !out.stdout.is_empty() {
            return;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("coap-server-notls on port {port} did not answer");
}

/// Kills a spawned server however the test ends.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_udp_port() -> u16 {
    let s = UdpSocket::bind("[::1]:0").unwrap_or_else(|e| panic!("{e}"));
    s.local_addr().map(|a| a.port()).unwrap_or_else(|e| panic!("{e}"))
}

fn ferry_fetch(ferry: &mut Ferry, remote: SocketAddr, szx: u8) -> Vec<u8> {
    let peer = UdpPeer { socket: 0, addr: remote };
    let id = ferry
        .rt
        .block_on(ferry.handle.with(move |ep, now| {
            ep.start_fetch(now, peer, Request::get("fw/image.bin"), FetchOptions { szx, max_size: 1 << 20 })
        }))
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|e| panic!("{e}"));
    let ev = ferry
        .rt
        .block_on(async { tokio::time::timeout(Duration::from_secs(120), ferry.events.recv()).await })
        .unwrap_or_else(|_| panic!("no event within 120 s"));
    match ev {
        Some(Event::Response { id: got, response, .. }) if got == id => {
            assert!(response.code == coap_lite::ResponseType::Content, "{:?}", response.code);
            response.payload.to_vec()
        }
        other => panic!("fetch failed: {other:?}"),
    }
}

#[test]
fn ferry_fetches_from_aiocoap_server() {
    if !have_aiocoap() {
        return;
    }
    let port = free_udp_port();
    let child = Command::new("python3")
        .args(["-c", AIOCOAP_SERVER, &port.to_string(), &IMAGE_LEN.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("python3: {e}"));
    let mut child = KillOnDrop(child);
    let mut line = String::new();
    if let Some(out) = child.0.stdout.take() {
        let _ = BufReader::new(out).read_line(&mut line);
    }
    if line.trim() != "ready" {
        let mut err = String::new();
        if let Some(mut e) = child.0.stderr.take() {
            let _ = e.read_to_string(&mut err);
        }
        panic!("aiocoap server did not start: {err}");
    }
    let mut ferry = Ferry::start(Router::new(), Config::default());
    let remote: SocketAddr = format!("[::1]:{port}").parse().unwrap_or_else(|e| panic!("{e}"));
    for szx in [2u8, 6] {
        let body = ferry_fetch(&mut ferry, remote, szx);
        assert_eq!(body.len(), IMAGE_LEN, "szx {szx}");
        assert!(body == image(), "ferry got different bytes from aiocoap at szx {szx}");
    }
    drop(child);
}

#[test]
fn ferry_fetches_from_libcoap_server() {
    if !have_libcoap_client() || !have_spawnable("coap-server-notls", "libcoap's coap-server-notls") {
        return;
    }
    // libcoap's example server stores what is PUT to /example_data and serves it block-wise.
    let port = free_udp_port();
    let server = Command::new("coap-server-notls")
        .args(["-A", "::1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("coap-server-notls: {e}"));
    let server = KillOnDrop(server);
    wait_for_libcoap_server(port);
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let file = dir.path().join("image.bin");
    std::fs::write(&file, image()).unwrap_or_else(|e| panic!("{e}"));
    let mut put = Command::new("coap-client-notls");
    put.args(["-m", "put", "-b", "1024", "-f"]).arg(&file).arg(format!("coap://[::1]:{port}/example_data"));
    let res = run_with_timeout(put, 60);
    assert!(res.status.success(), "PUT to coap-server failed: {res:?}");
    let mut ferry = Ferry::start(Router::new(), Config::default());
    let remote: SocketAddr = format!("[::1]:{port}").parse().unwrap_or_else(|e| panic!("{e}"));
    let peer = UdpPeer { socket: 0, addr: remote };
    for szx in [2u8, 6] {
        let id = ferry
            .rt
            .block_on(ferry.handle.with(move |ep, now| {
                ep.start_fetch(now, peer, Request::get("example_data"), FetchOptions { szx, max_size: 1 << 20 })
            }))
            .unwrap_or_else(|e| panic!("{e}"))
            .unwrap_or_else(|e| panic!("{e}"));
        let ev = ferry
            .rt
            .block_on(async { tokio::time::timeout(Duration::from_secs(120), ferry.events.recv()).await })
            .unwrap_or_else(|_| panic!("no event within 120 s"));
        match ev {
            Some(Event::Response { id: got, response, .. }) if got == id => {
                assert_eq!(response.payload.len(), IMAGE_LEN, "szx {szx}");
                assert!(response.payload[..] == image()[..], "ferry got different bytes from libcoap at szx {szx}");
            }
            other => panic!("fetch failed: {other:?}"),
        }
    }
    drop(server);
}

#[test]
fn observe_notification_reaches_libcoap_subscriber() {
    if !have_libcoap_client() {
        return;
    }
    let mut r = Router::new();
    r.insert_static("state", StaticResource::new("initial", content_format::TEXT_PLAIN).observable());
    let ferry = Ferry::start(r, Config::default());
    let child = Command::new("timeout")
        .args(["30", "coap-client-notls", "-s", "4", &ferry.uri("state")])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("coap-client-notls: {e}"));
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let n = ferry.rt.block_on(ferry.handle.with(|ep, _| ep.observer_count())).unwrap_or(0);
        if n == 1 {
            break;
        }
        assert!(Instant::now() < deadline, "coap-client never registered as observer");
        std::thread::sleep(Duration::from_millis(50));
    }
    for v in ["changed-1", "changed-2"] {
        let sent = ferry.rt.block_on(ferry.handle.with(move |ep, now| ep.set_static(now, "state", v))).unwrap_or(false);
        assert!(sent);
        std::thread::sleep(Duration::from_millis(200));
    }
    let out = child.wait_with_output().unwrap_or_else(|e| panic!("{e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("initial"), "stdout: {stdout}");
    assert!(stdout.contains("changed-1") && stdout.contains("changed-2"), "stdout: {stdout}");
    let m = ferry.rt.block_on(ferry.handle.with(|ep, _| ep.metrics().clone())).unwrap_or_else(|e| panic!("{e}"));
    assert!(m.notifications_sent >= 2);
}
