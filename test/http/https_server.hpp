// The http tests' own HTTPS server (https_server.py, Debian's /usr/bin/python3): started on
// 127.0.0.1 and a port the kernel picks, with a certificate from the test PKI (or none: plain
// HTTP), stopped by its process id. Also the test PKI and sockets that never answer.
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
#include <string>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>
#include <vector>

extern char** environ;

namespace mailroom::test {

inline const std::string& http_test_pki()
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

class https_server {
public:
    // `cert`: a stem of the test PKI ("localhost", "wrong-name", "self-signed"); empty: plain.
    explicit https_server(const std::string& cert = "localhost")
    {
        char tmpl[] = "/tmp/mailroom-https-XXXXXX";
        REQUIRE(::mkdtemp(tmpl) != nullptr);
        dir_ = tmpl;
        const std::string portfile = (dir_ / "port").string();
        std::vector<std::string> args{"/usr/bin/python3",
                                      MAILROOM_SOURCE_DIR "/test/http/https_server.py", portfile};
        if (!cert.empty()) {
            args.push_back(http_test_pki() + "/" + cert + ".pem");
            args.push_back(http_test_pki() + "/" + cert + ".key");
        }
        std::vector<char*> argv;
        for (auto& a : args)
            argv.push_back(a.data());
        argv.push_back(nullptr);
        REQUIRE(::posix_spawn(&pid_, argv[0], nullptr, nullptr, argv.data(), environ) == 0);
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
        while (std::chrono::steady_clock::now() < deadline) {
            std::ifstream f(portfile);
            if (f >> port_ && port_ != 0)
                return;
            int status = 0;
            if (::waitpid(pid_, &status, WNOHANG) == pid_) {
                pid_ = -1;
                break;
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
        }
        stop();
        FAIL("https_server.py did not start");
    }
    ~https_server()
    {
        stop();
        std::error_code ignored;
        std::filesystem::remove_all(dir_, ignored);
    }
    https_server(const https_server&) = delete;
    https_server& operator=(const https_server&) = delete;

    void stop()
    {
        if (pid_ <= 0)
            return;
        ::kill(pid_, SIGKILL);
        int status = 0;
        ::waitpid(pid_, &status, 0);
        pid_ = -1;
    }

    unsigned short port() const { return port_; }
    // "https://localhost:PORT/path" (or with `host` instead).
    std::string url(const std::string& path, const std::string& host = "localhost",
                    const std::string& scheme = "https") const
    {
        return scheme + "://" + host + ":" + std::to_string(port_) + path;
    }

private:
    std::filesystem::path dir_;
    pid_t pid_ = -1;
    unsigned short port_ = 0;
};

} // namespace mailroom::test
