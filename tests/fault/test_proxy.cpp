// The fault proxy itself, against an echo server: every mode does what the
// fault tests rely on. Every wait is a poll() with a timeout.

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>

#include "proxy.hpp"

using namespace std::chrono_literals;
using fault::FaultProxy;
using fault::Mode;
using Clock = std::chrono::steady_clock;

namespace {

constexpr auto patience = 5s;         // for what must happen: generous, never reached when all is well
constexpr auto silence = 200ms;       // for what must not happen

sockaddr_in loopback(std::uint16_t port) {
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return addr;
}

std::uint16_t local_port(int fd) {
    sockaddr_in addr{};
    socklen_t len = sizeof addr;
    REQUIRE(::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
    return ntohs(addr.sin_port);
}

int poll_one(int fd, short events, std::chrono::milliseconds timeout) {
    pollfd p{fd, events, 0};
    const int n = ::poll(&p, 1, static_cast<int>(timeout.count()));
    return n > 0 ? p.revents : 0;
}

// Echoes every connection on 127.0.0.1 from one thread until destroyed.
class EchoServer {
public:
    EchoServer() {
        listener_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        const sockaddr_in addr = loopback(0);
        REQUIRE(::bind(listener_, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0);
        REQUIRE(::listen(listener_, 64) == 0);
        port_ = local_port(listener_);
        stop_ = ::eventfd(0, EFD_CLOEXEC);
        REQUIRE(stop_ >= 0);
        thread_ = std::thread([this] { run(); });
    }
    ~EchoServer() {
        const std::uint64_t one = 1;
        [[maybe_unused]] auto n = ::write(stop_, &one, sizeof one);
        thread_.join();
        for (int fd : {listener_, stop_}) ::close(fd);
    }
    EchoServer(const EchoServer&) = delete;
    EchoServer& operator=(const EchoServer&) = delete;
    std::uint16_t port() const { return port_; }

private:
    void run() {
        std::vector<int> conns;
        std::vector<char> buf(64 * 1024);
        for (;;) {
            std::vector<pollfd> fds{{stop_, POLLIN, 0}, {listener_, POLLIN, 0}};
            for (int fd : conns) fds.push_back({fd, POLLIN, 0});
            if (::poll(fds.data(), fds.size(), -1) < 0 || fds[0].revents) break;
            for (std::size_t i = 2; i < fds.size(); ++i) {
                if (!fds[i].revents) continue;
                const ssize_t n = ::recv(fds[i].fd, buf.data(), buf.size(), 0);
                if (n <= 0 || !send_all(fds[i].fd, buf.data(), static_cast<std::size_t>(n))) {
                    ::close(fds[i].fd);
                    std::erase(conns, fds[i].fd);
                }
            }
            if (fds[1].revents) {
                const int fd = ::accept4(listener_, nullptr, nullptr, SOCK_CLOEXEC);
                if (fd >= 0) conns.push_back(fd);
            }
        }
        for (int fd : conns) ::close(fd);
    }
    // Blocking sends, bounded: a peer that reads nothing for `patience` is dropped.
    static bool send_all(int fd, const char* data, std::size_t size) {
        while (size > 0) {
            if (!(poll_one(fd, POLLOUT, patience) & POLLOUT)) return false;
            const ssize_t n = ::send(fd, data, size, MSG_NOSIGNAL | MSG_DONTWAIT);
            if (n < 0 && errno != EAGAIN) return false;
            if (n > 0) data += n, size -= static_cast<std::size_t>(n);
        }
        return true;
    }

    int listener_ = -1;
    int stop_ = -1;
    std::uint16_t port_ = 0;
    std::thread thread_;
};

// A non-blocking client socket; every operation waits at most its timeout.
class Client {
public:
    // Connects to 127.0.0.1:port; error() is the errno when that failed.
    explicit Client(std::uint16_t port) : fd_(::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)) {
        REQUIRE(fd_ >= 0);
        const sockaddr_in addr = loopback(port);
        if (::connect(fd_, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0) return;
        error_ = errno;
        if (error_ != EINPROGRESS) return;
        REQUIRE(poll_one(fd_, POLLOUT, patience) != 0);
        socklen_t len = sizeof error_;
        REQUIRE(::getsockopt(fd_, SOL_SOCKET, SO_ERROR, &error_, &len) == 0);
    }
    ~Client() { ::close(fd_); }
    Client(const Client&) = delete;
    Client& operator=(const Client&) = delete;

    int error() const { return error_; }

    void send(const std::string& data) {
        REQUIRE(::send(fd_, data.data(), data.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(data.size()));
    }

    struct Received {
        std::string data;
        bool eof = false;
        int error = 0;  // errno of a failed recv
    };
    // Reads until `want` bytes arrived, EOF, an error or `timeout`.
    Received receive(std::size_t want, std::chrono::milliseconds timeout = patience) {
        Received r;
        const auto deadline = Clock::now() + timeout;
        char buf[4096];
        while (r.data.size() < want) {
            const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now());
            if (left <= 0ms || !poll_one(fd_, POLLIN, left)) break;
            const ssize_t n = ::recv(fd_, buf, std::min(sizeof buf, want - r.data.size()), 0);
            if (n < 0 && errno == EAGAIN) continue;
            if (n < 0) r.error = errno;
            if (n == 0) r.eof = true;
            if (n <= 0) break;
            r.data.append(buf, static_cast<std::size_t>(n));
        }
        return r;
    }
    std::string echo(const std::string& data) {
        send(data);
        return receive(data.size()).data;
    }
    void shutdown_write() { REQUIRE(::shutdown(fd_, SHUT_WR) == 0); }
    int fd() const { return fd_; }

private:
    int fd_;
    int error_ = 0;
};

bool ended(const Client::Received& r) { return r.eof || r.error == ECONNRESET; }

}  // namespace

TEST_CASE("pass forwards both ways and counts", "[proxy]") {
    EchoServer server;
    FaultProxy proxy(server.port());
    REQUIRE(proxy.port() != 0);
    REQUIRE(proxy.port() != server.port());

    Client client(proxy.port());
    REQUIRE(client.error() == 0);
    CHECK(client.echo("hello") == "hello");
    CHECK(client.echo("again") == "again");  // its echo can only come after the first one was counted
    CHECK(proxy.accepted() == 1);
    CHECK(proxy.open_connections() == 1);
    CHECK(proxy.bytes_to_upstream() >= 10);
    CHECK(proxy.bytes_to_client() >= 5);

    SECTION("EOF travels through: the client's FIN reaches the server, whose close comes back") {
        client.shutdown_write();
        const auto r = client.receive(1);
        CHECK(r.data.empty());
        CHECK(r.eof);
    }
}

TEST_CASE("pass keeps a bulk transfer intact through the bounded buffers", "[proxy]") {
    EchoServer server;
    FaultProxy proxy(server.port());
    Client client(proxy.port());
    REQUIRE(client.error() == 0);

    std::string sent(4 * 1024 * 1024, '\0');
    for (std::size_t i = 0; i < sent.size(); ++i) sent[i] = static_cast<char>(i * 131 % 251);
    std::string got;
    std::size_t offset = 0;
    std::vector<char> buf(64 * 1024);
    const auto deadline = Clock::now() + 30s;
    while (got.size() < sent.size() && Clock::now() < deadline) {
        pollfd p{client.fd(), static_cast<short>(POLLIN | (offset < sent.size() ? POLLOUT : 0)), 0};
        REQUIRE(::poll(&p, 1, 5000) == 1);
        if (p.revents & POLLOUT) {
            const ssize_t n = ::send(client.fd(), sent.data() + offset, sent.size() - offset, MSG_NOSIGNAL);
            if (n > 0) offset += static_cast<std::size_t>(n);
        }
        if (p.revents & POLLIN) {
            const ssize_t n = ::recv(client.fd(), buf.data(), buf.size(), 0);
            REQUIRE(n > 0);
            got.append(buf.data(), static_cast<std::size_t>(n));
        }
    }
    REQUIRE(got.size() == sent.size());
    CHECK(got == sent);
    CHECK(proxy.bytes_to_upstream() == sent.size());
}

TEST_CASE("delay holds each chunk, in order", "[proxy]") {
    EchoServer server;
    FaultProxy proxy(server.port());
    Client client(proxy.port());
    REQUIRE(client.echo("warm") == "warm");

    constexpr auto delay = 150ms;
    proxy.set_delay(delay);
    proxy.set_mode(Mode::delay);
    const auto start = Clock::now();
    CHECK(client.echo("slow") == "slow");
    CHECK(Clock::now() - start >= 2 * delay);  // held once on the way there, once back

    SECTION("a shorter delay set later does not overtake what is queued") {
        proxy.set_delay(300ms);
        client.send("first");
        proxy.set_delay(0ms);
        client.send("second");
        CHECK(client.receive(11).data == "firstsecond");
    }
    SECTION("back to pass, no delay") {
        proxy.set_mode(Mode::pass);
        CHECK(client.echo("fast") == "fast");
    }
}

TEST_CASE("blackhole stalls every connection until pass resumes it", "[proxy]") {
    EchoServer server;
    FaultProxy proxy(server.port());
    Client old_client(proxy.port());
    REQUIRE(old_client.echo("before") == "before");

    proxy.set_mode(Mode::blackhole);
    old_client.send("during");
    Client new_client(proxy.port());
    REQUIRE(new_client.error() == 0);  // accepted all the same
    new_client.send("newcomer");
    const auto r = old_client.receive(6, silence);
    CHECK(r.data.empty());
    CHECK_FALSE(ended(r));
    CHECK(new_client.receive(8, silence).data.empty());

    proxy.set_mode(Mode::pass);
    CHECK(old_client.receive(6).data == "during");
    CHECK(new_client.receive(8).data == "newcomer");
    CHECK(proxy.accepted() == 2);
}

TEST_CASE("blackhole reads nothing, so a sender stalls in its own buffers", "[proxy]") {
    EchoServer server;
    FaultProxy proxy(server.port());
    Client client(proxy.port());
    REQUIRE(client.echo("x") == "x");
    const auto before = proxy.bytes_to_upstream();

    proxy.set_mode(Mode::blackhole);
    const std::string block(64 * 1024, 'b');
    std::size_t sent = 0;
    while (poll_one(client.fd(), POLLOUT, silence) & POLLOUT) {  // until the kernel buffers are full
        const ssize_t n = ::send(client.fd(), block.data(), block.size(), MSG_NOSIGNAL);
        if (n > 0) sent += static_cast<std::size_t>(n);
        REQUIRE(sent < 256u * 1024 * 1024);
    }
    CHECK(proxy.bytes_to_upstream() == before);

    proxy.set_mode(Mode::pass);  // everything buffered flows again
    std::size_t echoed = 0;
    std::vector<char> buf(64 * 1024);
    while (echoed < sent && poll_one(client.fd(), POLLIN, patience)) {
        const ssize_t n = ::recv(client.fd(), buf.data(), buf.size(), 0);
        REQUIRE(n > 0);
        echoed += static_cast<std::size_t>(n);
    }
    CHECK(echoed == sent);
}

TEST_CASE("reset resets existing and new connections", "[proxy]") {
    EchoServer server;
    FaultProxy proxy(server.port());
    Client old_client(proxy.port());
    REQUIRE(old_client.echo("hi") == "hi");

    proxy.set_mode(Mode::reset);
    CHECK(proxy.open_connections() == 0);
    CHECK(ended(old_client.receive(1)));

    Client new_client(proxy.port());  // the kernel may complete the handshake before the reset
    if (new_client.error() == 0) {
        CHECK(ended(new_client.receive(1)));
    } else {
        CHECK(new_client.error() == ECONNRESET);
    }
    CHECK(proxy.accepted() == 2);

    proxy.set_mode(Mode::pass);
    Client later(proxy.port());
    CHECK(later.echo("back") == "back");
}

TEST_CASE("refuse stops listening; pass listens again on the same port", "[proxy]") {
    EchoServer server;
    FaultProxy proxy(server.port());
    const auto port = proxy.port();
    Client old_client(port);
    REQUIRE(old_client.echo("hi") == "hi");

    proxy.set_mode(Mode::refuse);
    CHECK(Client(port).error() == ECONNREFUSED);
    CHECK(old_client.echo("still") == "still");  // existing connections keep working

    proxy.set_mode(Mode::pass);
    CHECK(proxy.port() == port);
    Client new_client(port);
    REQUIRE(new_client.error() == 0);
    CHECK(new_client.echo("again") == "again");
}

TEST_CASE("blackhole_new stalls new connections only", "[proxy]") {
    EchoServer server;
    FaultProxy proxy(server.port());
    Client old_client(proxy.port());
    REQUIRE(old_client.echo("hi") == "hi");

    proxy.blackhole_new_only();
    CHECK(proxy.mode() == Mode::blackhole_new);
    Client new_client(proxy.port());
    REQUIRE(new_client.error() == 0);
    new_client.send("stuck");
    CHECK(old_client.echo("flows") == "flows");
    const auto r = new_client.receive(5, silence);
    CHECK(r.data.empty());
    CHECK_FALSE(ended(r));

    proxy.set_mode(Mode::pass);
    CHECK(new_client.receive(5).data == "stuck");
}

TEST_CASE("an upstream that refuses resets the client", "[proxy]") {
    // A bound socket that does not listen: connects to its port are refused.
    const int closed = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    const sockaddr_in addr = loopback(0);
    REQUIRE(::bind(closed, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0);
    {
        FaultProxy proxy(local_port(closed));
        Client client(proxy.port());
        // The reset may land before the client's own connect has completed.
        if (client.error() == 0)
            CHECK(ended(client.receive(1)));
        else
            CHECK(client.error() == ECONNRESET);
    }
    ::close(closed);
}

TEST_CASE("the destructor closes every socket promptly, even stalled ones", "[proxy]") {
    EchoServer server;
    auto proxy = std::make_unique<FaultProxy>(server.port());
    Client client(proxy->port());
    REQUIRE(client.echo("hi") == "hi");
    proxy->set_mode(Mode::blackhole);
    client.send("pending");

    const auto start = Clock::now();
    proxy.reset();
    CHECK(Clock::now() - start < 1s);
    CHECK(ended(client.receive(100)));
}

TEST_CASE("modes switch safely from another thread while traffic flows", "[proxy]") {
    EchoServer server;
    FaultProxy proxy(server.port());
    Client client(proxy.port());
    REQUIRE(client.echo("hi") == "hi");
    proxy.set_delay(1ms);

    std::atomic<bool> done{false};
    std::thread switcher([&] {
        // Every mode but reset: none of them may break an established connection.
        const Mode modes[] = {Mode::delay, Mode::blackhole, Mode::blackhole_new, Mode::refuse, Mode::pass};
        for (int i = 0; i < 500; ++i) proxy.set_mode(modes[i % 5]);
        done = true;
    });
    int echoes = 0;
    bool intact = true;
    while (!done && intact) {
        const auto message = "message " + std::to_string(echoes++);
        intact = client.echo(message) == message;
    }
    switcher.join();
    CHECK(intact);
    CHECK(proxy.mode() == Mode::pass);
    CHECK(client.echo("last") == "last");
    CHECK(proxy.accepted() == 1);
}
