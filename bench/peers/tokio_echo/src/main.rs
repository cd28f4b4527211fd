//! tokio_echo: the tokio peer of the echo benchmark.
//!
//!     tokio_echo [--host H] [--port P]   (defaults: all IPv6 and IPv4 addresses, port 0)
//!
//! One current_thread runtime on the main thread, a task per connection;
//! each task reads into its own 16 KiB buffer and writes every byte back, as
//! bench/baselines/echo_*.c do.  Prints "listening on HOST:PORT" once ready;
//! exits 0 on SIGTERM or SIGINT.

use std::io::{self, Write};
use std::net::{IpAddr, Ipv6Addr, SocketAddr, ToSocketAddrs};
use std::os::unix::io::AsRawFd;
use std::process::exit;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::signal::unix::{signal, SignalKind};

const BUF_SIZE: usize = 16 * 1024; // as examples/echo_server.c's buffers
const BACKLOG: u32 = 4096; // as the C servers'; the kernel caps it at somaxconn

async fn echo(mut s: TcpStream) {
    let mut buf = vec![0u8; BUF_SIZE];
    loop {
        // Ok(0): the peer closed; Err: reset or another error.  Either way
        // only this connection ends (dropping the stream closes it).
        let n = match s.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        // write_all loops over short writes.
        if s.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

/// Lifts the soft RLIMIT_NOFILE to the hard limit so 10,000 connections fit.
fn raise_nofile() {
    let mut rl = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: rl is a valid rlimit the calls read or fill.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl) == 0 && rl.rlim_cur < rl.rlim_max {
            rl.rlim_cur = rl.rlim_max;
            if libc::setrlimit(libc::RLIMIT_NOFILE, &rl) != 0 {
                eprintln!("tokio_echo: setrlimit: {}", io::Error::last_os_error());
            }
        }
    }
}

fn listen(addr: SocketAddr) -> io::Result<TcpListener> {
    let sock = if addr.is_ipv6() {
        let s = TcpSocket::new_v6()?;
        // "::" takes IPv4 too, whatever net.ipv6.bindv6only says.
        let zero: libc::c_int = 0;
        // SAFETY: a live socket fd and a c_int option value of the right size.
        let r = unsafe {
            libc::setsockopt(
                s.as_raw_fd(),
                libc::IPPROTO_IPV6,
                libc::IPV6_V6ONLY,
                &zero as *const libc::c_int as *const libc::c_void,
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if r != 0 {
            return Err(io::Error::last_os_error());
        }
        s
    } else {
        TcpSocket::new_v4()?
    };
    sock.set_reuseaddr(true)?;
    sock.bind(addr)?;
    sock.listen(BACKLOG)
}

fn is_transient(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(
            libc::ECONNABORTED
                | libc::EINTR
                | libc::EPROTO
                | libc::EPERM
                | libc::ENETDOWN
                | libc::ENONET
                | libc::EHOSTDOWN
                | libc::EHOSTUNREACH
                | libc::ENETUNREACH
                | libc::EOPNOTSUPP
                | libc::ETIMEDOUT
        )
    )
}

fn is_out_of_resources(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
    )
}

async fn serve(addr: SocketAddr) -> io::Result<()> {
    // Registered before the ready line, so a SIGTERM sent right after it is
    // never lost to the default action.
    for kind in [SignalKind::terminate(), SignalKind::interrupt()] {
        let mut s = signal(kind)?;
        tokio::spawn(async move {
            s.recv().await;
            exit(0);
        });
    }

    let l = listen(addr)?;
    let mut out = io::stdout().lock();
    writeln!(out, "listening on {}", l.local_addr()?)?;
    out.flush()?;
    drop(out);

    let mut pause = Duration::from_millis(5);
    loop {
        match l.accept().await {
            Ok((s, _)) => {
                pause = Duration::from_millis(5);
                let _ = s.set_nodelay(true); // as the C servers: no Nagle delay on echoes
                tokio::spawn(echo(s));
            }
            Err(e) if is_transient(&e) => {}
            Err(e) if is_out_of_resources(&e) => {
                // The connection waits in the backlog: retry after a pause
                // that grows while this lasts.
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(1));
            }
            Err(e) => return Err(e),
        }
    }
}

fn usage() -> ! {
    eprintln!("usage: tokio_echo [--host H] [--port P]");
    exit(2);
}

fn main() {
    let mut host: Option<String> = None;
    let mut port: u16 = 0;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let (key, val) = match a.split_once('=') {
            Some((k, v)) => (k.to_string(), Some(v.to_string())),
            None => (a.clone(), None),
        };
        let mut val = || {
            val.clone()
                .or_else(|| args.next())
                .unwrap_or_else(|| usage())
        };
        match key.as_str() {
            "--host" | "-host" => host = Some(val()),
            "--port" | "-port" => port = val().parse().unwrap_or_else(|_| usage()),
            _ => usage(),
        }
    }
    let addr = match host.as_deref() {
        None | Some("") => SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), port),
        Some(h) => match (h, port).to_socket_addrs().ok().and_then(|mut a| a.next()) {
            Some(a) => a,
            None => {
                eprintln!("tokio_echo: cannot resolve {}", h);
                exit(1);
            }
        },
    };
    raise_nofile();

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()
        .unwrap_or_else(|e| {
            eprintln!("tokio_echo: runtime: {}", e);
            exit(1);
        });
    if let Err(e) = rt.block_on(serve(addr)) {
        eprintln!("tokio_echo: {}: {}", addr, e);
        exit(1);
    }
}
