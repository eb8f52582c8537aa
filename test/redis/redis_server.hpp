// The redis tests' own redis-server: started on 127.0.0.1 and a free port, in a temporary
// directory, with no persistence; stopped by its process id (SIGKILL), paused (SIGSTOP) and
// resumed, started again on the same port. Also a free port and the test PKI.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>

#include <doctest/doctest.h>

#include <chrono>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <spawn.h>
#include <sstream>
#include <string>
#include <string_view>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>
#include <vector>

extern char** environ;

namespace mailroom::test {

namespace redis_detail {
namespace asio = boost::asio;
using steady = std::chrono::steady_clock;
using namespace std::chrono_literals;
} // namespace redis_detail

using namespace redis_detail;

inline std::uint16_t free_port()
{
    asio::io_context io;
    asio::ip::tcp::acceptor a(io, {asio::ip::make_address("127.0.0.1"), 0});
    return a.local_endpoint().port();
}

inline const std::string& test_pki()
{
    static const std::string dir = [] {
        const std::string d = "/tmp/mailroom-test-pki-" + std::to_string(::getuid());
        const std::string cmd = "/usr/bin/python3 " MAILROOM_SOURCE_DIR
                                "/test/integration/peers/make_test_pki.py " +
                                d + " >/dev/null";
        if (std::system(cmd.c_str()) != 0)
            throw std::runtime_error("make_test_pki.py failed");
        return d;
    }();
    return dir;
}

// One redis-server process of our own.
class redis_server {
public:
    // `extra`: more redis-server options. `tls`: the port is a TLS port (plain TCP off).
    explicit redis_server(std::vector<std::string> extra = {}, bool tls = false)
        : extra_(std::move(extra))
        , tls_(tls)
    {
        char tmpl[] = "/tmp/mailroom-redis-XXXXXX";
        REQUIRE(::mkdtemp(tmpl) != nullptr);
        dir_ = tmpl;
        // A port that was free a moment ago; another process may take it first, so retry.
        for (int attempt = 0; attempt < 5; ++attempt) {
            port_ = free_port();
            if (start())
                return;
        }
        FAIL("redis-server did not start: " << log_text());
    }
    ~redis_server()
    {
        stop();
        std::error_code ignored;
        std::filesystem::remove_all(dir_, ignored);
    }
    redis_server(const redis_server&) = delete;
    redis_server& operator=(const redis_server&) = delete;

    std::uint16_t port() const { return port_; }
    pid_t pid() const { return pid_; }

    // Starts it (again) on port(); true once it accepts connections.
    bool start()
    {
        const std::string logfile = (dir_ / "redis.log").string();
        std::filesystem::remove(logfile);
        std::vector<std::string> args{
            "redis-server", "--bind",      "127.0.0.1", "--save",      "",
            "--appendonly", "no",          "--dir",     dir_.string(), "--logfile",
            logfile,        "--daemonize", "no"};
        if (tls_) {
            const std::string pki = test_pki();
            for (const char* a : {"--port", "0", "--tls-port"})
                args.push_back(a);
            args.push_back(std::to_string(port_));
            for (const std::string& a : {std::string("--tls-cert-file"), pki + "/localhost.pem",
                                         std::string("--tls-key-file"), pki + "/localhost.key",
                                         std::string("--tls-ca-cert-file"), pki + "/ca.pem",
                                         std::string("--tls-auth-clients"), std::string("no")})
                args.push_back(a);
        } else {
            args.push_back("--port");
            args.push_back(std::to_string(port_));
        }
        args.insert(args.end(), extra_.begin(), extra_.end());
        std::vector<char*> argv;
        for (auto& a : args)
            argv.push_back(a.data());
        argv.push_back(nullptr);
        REQUIRE(::posix_spawnp(&pid_, "redis-server", nullptr, nullptr, argv.data(), environ) == 0);
        const auto deadline = steady::now() + 10s;
        while (steady::now() < deadline) {
            int status = 0;
            if (::waitpid(pid_, &status, WNOHANG) == pid_) {
                pid_ = -1; // exited: the port was taken, say
                return false;
            }
            if (log_text().find("Ready to accept connections") != std::string::npos)
                return true;
            std::this_thread::sleep_for(10ms);
        }
        stop();
        return false;
    }

    // Kills it (SIGKILL: no goodbye to the clients) and reaps it.
    void stop()
    {
        if (pid_ <= 0)
            return;
        ::kill(pid_, SIGKILL);
        int status = 0;
        ::waitpid(pid_, &status, 0);
        pid_ = -1;
    }
    void pause() { REQUIRE(::kill(pid_, SIGSTOP) == 0); }
    void resume() { REQUIRE(::kill(pid_, SIGCONT) == 0); }

    std::string log_text() const
    {
        std::ifstream f(dir_ / "redis.log");
        std::stringstream s;
        s << f.rdbuf();
        return s.str();
    }

    std::string url(std::string_view userinfo = {}, unsigned db = 0) const
    {
        std::string u = tls_ ? "rediss://" : "redis://";
        if (!userinfo.empty())
            u += std::string(userinfo) + "@";
        return u + "127.0.0.1:" + std::to_string(port_) + "/" + std::to_string(db);
    }

private:
    std::vector<std::string> extra_;
    bool tls_;
    std::filesystem::path dir_;
    std::uint16_t port_ = 0;
    pid_t pid_ = -1;
};

} // namespace mailroom::test
