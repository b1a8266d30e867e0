// custom_driver: the pool is generic. This Driver pools TCP connections to a
// line-echo server that the example starts itself on 127.0.0.1, so it runs
// anywhere. A Driver is a connection type and three functions.
//
//   build/examples/reservoir_example_custom_driver

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <reservoir/reservoir.hpp>

// The pooled resource: a connected socket, move-only, closed on destruction.
struct Socket {
    int fd;
    explicit Socket(int f) noexcept : fd(f) {}
    Socket(Socket&& o) noexcept : fd(std::exchange(o.fd, -1)) {}
    ~Socket() { if (fd >= 0) ::close(fd); }

    std::string call(const std::string& line) const {  // one line out, its echo back; "" if broken
        const std::string out = line + "\n";
        std::string in;
        char c = 0;
        if (::send(fd, out.data(), out.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(out.size()))
            while (::recv(fd, &c, 1, 0) == 1 && c != '\n') in += c;
        return in;
    }
};

struct EchoDriver {
    using connection_type = Socket;
    sockaddr_in addr;

    Socket connect(reservoir::time_point) {  // (a real driver honours the deadline)
        Socket s(::socket(AF_INET, SOCK_STREAM, 0));
        if (s.fd < 0 || ::connect(s.fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0)
            throw reservoir::ConnectError("echo: connect failed");
        return s;
    }
    // Local, no round trip: an idle echo socket has nothing to read (a closed one reads EOF).
    bool is_usable(const Socket& s) const noexcept {
        pollfd p{s.fd, POLLIN, 0};
        return s.fd >= 0 && ::poll(&p, 1, 0) == 0;
    }
    bool ping(Socket& s, reservoir::time_point) { return s.call("ping") == "ping"; }
};
static_assert(reservoir::Driver<EchoDriver>);

int main() {
    // The echo server: a free port on loopback, a thread per client.
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    const int listener = ::socket(AF_INET, SOCK_STREAM, 0);
    if (::bind(listener, reinterpret_cast<sockaddr*>(&addr), len) != 0 || ::listen(listener, 16) != 0 ||
        ::getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len) != 0)
        return std::perror("echo server"), 1;
    std::vector<std::thread> clients;
    std::thread acceptor([&] {
        for (int fd; (fd = ::accept(listener, nullptr, nullptr)) >= 0;)
            clients.emplace_back([fd] {
                char buf[512];
                for (ssize_t n; (n = ::recv(fd, buf, sizeof buf, 0)) > 0;) ::send(fd, buf, size_t(n), MSG_NOSIGNAL);
                ::close(fd);
            });
    });

    bool passed = false;
    {
        // The same Pool as for PostgreSQL, over sockets: 40 callers, at most 3 sockets.
        reservoir::Pool<EchoDriver> pool(EchoDriver{addr}, {.min_size = 1, .max_size = 3});
        std::atomic<int> ok{0};
        std::vector<std::thread> callers;
        for (int i = 0; i < 40; ++i)
            callers.emplace_back([&pool, &ok, msg = "hello " + std::to_string(i)] {
                if (pool.acquire()->call(msg) == msg) ++ok;
            });
        for (auto& t : callers) t.join();
        const auto s = pool.stats();
        std::printf("echoed %d/40 calls through %llu sockets (max_size 3)\n", ok.load(),
                    static_cast<unsigned long long>(s.connects));
        passed = ok == 40 && s.connects <= 3;
        pool.shutdown(std::chrono::seconds(2));  // closes the sockets: the client threads end
    }
    ::shutdown(listener, SHUT_RDWR);  // wakes accept()
    acceptor.join();
    ::close(listener);
    for (auto& t : clients) t.join();
    return passed ? 0 : 1;
}
