// asio_echo: the echo server on Boost.Asio, one io_context run on one
// thread, a peer for the server benchmarks; it does not use uco.  Built
// twice from this file: by asio_epoll.sh with Asio's default reactor
// (epoll), and by asio_uring.sh with -DBOOST_ASIO_HAS_IO_URING
// -DBOOST_ASIO_DISABLE_EPOLL, Asio's io_uring backend (Boost >= 1.78).
//
//     asio_echo [--host ADDR] [--port P]   (defaults: [::] dual stack, port 7000)
//
// Prints "listening on HOST:PORT", echoes every byte until the peer closes
// or resets the connection; on SIGINT or SIGTERM it stops the io_context
// and exits 0.  ADDR is a numeric IPv4 or IPv6 address.
//
// The textbook Asio echo: a session per connection owns its socket and a
// 16 KiB buffer, async_read_some then async_write of what was read (which
// finishes short writes), then the next read.  Pending handlers hold the
// session through a shared_ptr, so it goes away with its last operation.
#include <boost/asio.hpp>
#include <boost/version.hpp>

#include <getopt.h>
#include <signal.h>
#include <sys/resource.h>

#include <array>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <utility>

#if defined(BOOST_ASIO_HAS_IO_URING) && BOOST_VERSION < 107800
#error "Asio's io_uring backend needs Boost 1.78 or later"
#endif

namespace asio = boost::asio;
using asio::ip::tcp;
using boost::system::error_code;

namespace {

constexpr int kDefaultPort = 7000;
constexpr int kBacklog = 4096;

class Session : public std::enable_shared_from_this<Session> {
public:
    explicit Session(tcp::socket sock) : sock_(std::move(sock)) {}

    void read()
    {
        sock_.async_read_some(asio::buffer(buf_),
                              [self = shared_from_this()](error_code ec, std::size_t n) {
                                  if (!ec) // eof or a reset: the session ends here
                                      self->write(n);
                              });
    }

private:
    void write(std::size_t n)
    {
        asio::async_write(sock_, asio::buffer(buf_.data(), n),
                          [self = shared_from_this()](error_code ec, std::size_t) {
                              if (!ec)
                                  self->read();
                          });
    }

    tcp::socket sock_;
    std::array<char, 16 * 1024> buf_;
};

class Server {
public:
    Server(asio::io_context &ctx, tcp::acceptor &acc) : acc_(acc), retry_(ctx) {}

    void accept()
    {
        acc_.async_accept([this](error_code ec, tcp::socket sock) {
            if (!acc_.is_open())
                return;
            if (!ec) {
                error_code ignored;
                sock.set_option(tcp::no_delay(true), ignored);
                std::make_shared<Session>(std::move(sock))->read();
                accept();
                return;
            }
            // Out of fds or memory: the connection stays in the backlog,
            // so accepting again at once would spin; wait a little first.
            std::fprintf(stderr, "asio_echo: accept: %s\n", ec.message().c_str());
            retry_.expires_after(std::chrono::milliseconds(10));
            retry_.async_wait([this](error_code) { accept(); });
        });
    }

private:
    tcp::acceptor &acc_;
    asio::steady_timer retry_;
};

void usage(FILE *f)
{
    std::fprintf(f,
                 "usage: asio_echo [--host ADDR] [--port P]\n"
                 "  --host ADDR  numeric address to listen on (default: :: and IPv4 too)\n"
                 "  --port P     TCP port, 0 picks a free one (default: %d)\n",
                 kDefaultPort);
}

} // namespace

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"host", required_argument, nullptr, 'h'},
        {"port", required_argument, nullptr, 'p'},
        {"help", no_argument, nullptr, 'H'},
        {nullptr, 0, nullptr, 0},
    };
    std::string host = "::";
    int port = kDefaultPort, opt;
    while ((opt = getopt_long(argc, argv, "", opts, nullptr)) != -1) {
        char *end;
        long v;
        switch (opt) {
        case 'h':
            host = optarg;
            break;
        case 'p':
            errno = 0;
            v = std::strtol(optarg, &end, 10);
            if (errno || end == optarg || *end || v < 0 || v > 65535) {
                std::fprintf(stderr,
                             "asio_echo: --port: '%s' is not a port number (0-65535)\n",
                             optarg);
                return 2;
            }
            port = static_cast<int>(v);
            break;
        case 'H':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind < argc) {
        std::fprintf(stderr, "asio_echo: unexpected argument '%s'\n", argv[optind]);
        usage(stderr);
        return 2;
    }

    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    signal(SIGPIPE, SIG_IGN); // a reset peer must end its session, not the process

    error_code ec;
    asio::ip::address addr = asio::ip::make_address(host, ec);
    if (ec) {
        std::fprintf(stderr, "asio_echo: --host: '%s' is not a numeric address\n",
                     host.c_str());
        return 2;
    }
    asio::io_context ctx(1); // one thread runs it: lets Asio skip some locking
    tcp::endpoint ep(addr, static_cast<unsigned short>(port));
    tcp::acceptor acc(ctx);
    acc.open(ep.protocol(), ec);
    if (!ec && addr.is_v6())
        acc.set_option(asio::ip::v6_only(false), ec); // "::" takes IPv4 too
    if (!ec)
        acc.set_option(asio::socket_base::reuse_address(true), ec);
    if (!ec)
        acc.bind(ep, ec);
    if (!ec)
        acc.listen(kBacklog, ec);
    if (ec) {
        std::fprintf(stderr, "asio_echo: cannot listen on %s port %d: %s\n", host.c_str(), port,
                     ec.message().c_str());
        return 1;
    }
    tcp::endpoint local = acc.local_endpoint(ec);
    std::string shown = local.address().to_string();
    if (local.address().is_v6())
        shown = "[" + shown + "]";
    std::printf("listening on %s:%u\n", shown.c_str(), static_cast<unsigned>(local.port()));
    if (std::fflush(stdout) != 0) {
        std::perror("asio_echo: stdout");
        return 1;
    }

    Server server(ctx, acc);
    server.accept();
    asio::signal_set sigs(ctx, SIGINT, SIGTERM);
    sigs.async_wait([&ctx](error_code, int) { ctx.stop(); });
    ctx.run();
    return 0;
}
