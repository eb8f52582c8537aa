// The auth tests' peers: programs that print `PORT <n>` as their first line on stdout
// (test/integration/peers/oauth2_server.mjs, oauth_smtp_server.py), started on 127.0.0.1 and
// stopped by process id; and their control calls.
#pragma once

#include "../http/https_server.hpp" // http_test_pki()

#include <doctest/doctest.h>

#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <string>
#include <vector>

namespace mailroom::test {

/// Starts `args` with its standard output on a pipe; returns the pipe's read end.
inline int spawn_reading_stdout(std::vector<std::string> args, pid_t& pid)
{
    int out[2];
    REQUIRE(::pipe2(out, O_CLOEXEC) == 0);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, out[1], STDOUT_FILENO);
    std::vector<char*> argv;
    for (auto& a : args)
        argv.push_back(a.data());
    argv.push_back(nullptr);
    const int rc = ::posix_spawnp(&pid, argv[0], &fa, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&fa);
    ::close(out[1]);
    if (rc != 0)
        ::close(out[0]);
    REQUIRE_MESSAGE(rc == 0, "cannot start ", args[0]);
    return out[0];
}

/// A peer process: started with `args`, its port read from its first line.
class peer_process {
public:
    explicit peer_process(std::vector<std::string> args)
    {
        const std::string name = args.size() > 1 ? args[1] : args[0];
        const int fd = spawn_reading_stdout(std::move(args), pid_);
        std::string line;
        char c;
        pollfd p{fd, POLLIN, 0};
        while (line.find('\n') == std::string::npos && ::poll(&p, 1, 20000) > 0 &&
               ::read(fd, &c, 1) == 1)
            line += c;
        ::close(fd);
        if (line.rfind("PORT ", 0) != 0) {
            stop();
            FAIL(name, " did not start (first line: '", line, "')");
        }
        port_ = static_cast<unsigned short>(std::stoi(line.substr(5)));
    }
    ~peer_process() { stop(); }
    peer_process(const peer_process&) = delete;
    peer_process& operator=(const peer_process&) = delete;

    void stop()
    {
        if (pid_ <= 0)
            return;
        ::kill(pid_, SIGTERM);
        int status = 0;
        ::waitpid(pid_, &status, 0);
        pid_ = -1;
    }
    unsigned short port() const { return port_; }

private:
    pid_t pid_ = -1;
    unsigned short port_ = 0;
};

/// Whether node and oauth2-mock-server 8 are there (test/integration/peers/node_peers.sh).
inline bool token_server_available()
{
    return std::system("sh " MAILROOM_SOURCE_DIR
                       "/test/integration/peers/node_peers.sh --check >/dev/null 2>&1") == 0;
}

/// `/usr/bin/python3` fetching https://127.0.0.1:PORT/PATH (POST with `json` if given) with the
/// test CA; the response body.
inline std::string control(unsigned short port, const std::string& path,
                           const std::string& json = {})
{
    const std::string script =
        "import sys,ssl,urllib.request\n"
        "ctx=ssl.create_default_context(cafile=sys.argv[1])\n"
        "d=sys.argv[3].encode() if len(sys.argv)>3 else None\n"
        "r=urllib.request.Request(sys.argv[2],data=d,headers={'Content-Type':'application/json'})\n"
        "print(urllib.request.urlopen(r,context=ctx,timeout=10).read().decode())\n";
    std::vector<std::string> args{"/usr/bin/python3", "-c", script, http_test_pki() + "/ca.pem",
                                  "https://localhost:" + std::to_string(port) + path};
    if (!json.empty())
        args.push_back(json);
    pid_t pid = -1;
    const int fd = spawn_reading_stdout(std::move(args), pid);
    std::string body;
    char buf[4096];
    for (ssize_t n; (n = ::read(fd, buf, sizeof buf)) > 0;)
        body.append(buf, static_cast<std::size_t>(n));
    ::close(fd);
    int status = 0;
    ::waitpid(pid, &status, 0);
    const bool ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
    REQUIRE_MESSAGE(ok, "control ", path, " failed");
    return body;
}

} // namespace mailroom::test
