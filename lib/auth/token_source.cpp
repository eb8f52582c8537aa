// The token source's driver: the cache's decisions (token_cache.hpp) under a lock, one refresh
// coroutine at a time on a strand, retries with backoff, and the fetchers: a user callback or
// an OAuth2 grant over the http client (oauth2.hpp).
#include "oauth2.hpp"
#include "token_cache.hpp"

#include "detail/backoff.hpp"
#include "detail/completion.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/system/system_error.hpp>

#include <mutex>
#include <random>
#include <vector>

namespace mailroom::auth {

namespace detail {

using asio::awaitable;
constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);

/// Gets one token: a callback or an OAuth2 grant.
struct fetcher {
    virtual ~fetcher() = default;
    /// One try. `refresh`: the last token was refused. The reply's retry_after is a hint.
    virtual awaitable<token_reply> fetch(bool refresh) = 0;
    virtual void close() noexcept {}
};

struct callback_fetcher final : fetcher {
    asio::strand<asio::any_io_executor> strand;
    token_callback fn;

    callback_fetcher(asio::strand<asio::any_io_executor> s, token_callback f)
        : strand(std::move(s))
        , fn(std::move(f))
    {
    }

    awaitable<token_reply> fetch(bool refresh) override
    {
        // The callback may complete from any thread: the result is posted back to the strand.
        auto [ec, tok] =
            co_await asio::async_initiate<decltype(use_tuple), void(error_code, access_token)>(
                [this, refresh](auto handler) {
                    auto h = std::make_shared<decltype(handler)>(std::move(handler));
                    token_handler back = [h, s = strand](error_code e, access_token t) mutable {
                        asio::post(s, [h, e, t = std::move(t)]() mutable {
                            std::move (*h)(e, std::move(t));
                        });
                    };
                    try {
                        fn(refresh, std::move(back));
                    } catch (const std::exception& e) {
                        // The handler was moved into the call: it may be lost; report through a
                        // fresh post so the waiters aren't stranded.
                        access_token t;
                        t.diag = {"token callback", std::string("threw: ") + e.what()};
                        asio::post(strand, [h, t = std::move(t)]() mutable {
                            std::move (*h)(make_error_code(error::token_refresh_failed),
                                           std::move(t));
                        });
                    }
                },
                use_tuple);
        token_reply r;
        if (!ec && tok.value.empty()) {
            ec = make_error_code(error::token_refresh_failed);
            tok.diag = {"token callback", "gave an empty token"};
        }
        if (ec && ec.category() != library_category() && ec != asio::error::operation_aborted) {
            if (tok.diag.detail.empty())
                tok.diag = {"token callback", ec.message()};
            ec = make_error_code(error::token_refresh_failed);
        }
        r.ec = ec;
        r.token = std::move(tok);
        co_return r;
    }
};

struct oauth2_fetcher final : fetcher {
    oauth2_options opts;
    http::url url;
    std::optional<rsa_key> key;
    http::client client;
    std::string refresh_token;

    oauth2_fetcher(asio::any_io_executor ex, oauth2_options o, http::url u,
                   std::optional<rsa_key> k)
        : opts(std::move(o))
        , url(std::move(u))
        , key(std::move(k))
        , client(ex, opts.http)
        , refresh_token(opts.refresh_token)
    {
    }

    awaitable<token_reply> fetch(bool) override
    {
        std::string assertion;
        if (opts.grant == grant::jwt_bearer) {
            assertion =
                make_assertion(*opts.account, *key, opts.scope, opts.subject, url.to_string(),
                               std::chrono::system_clock::now(), opts.assertion_lifetime);
            if (assertion.empty()) {
                token_reply r;
                r.ec = make_error_code(error::invalid_token_source);
                r.token.diag = {"service account", "signing the assertion failed"};
                co_return r;
            }
        }
        auto [ec, resp] = co_await client.async_post_form(
            url, grant_form(opts, refresh_token, assertion), use_tuple);
        if (ec) {
            token_reply r;
            r.ec = map_request_error(ec);
            r.token.diag = resp.diag;
            if (r.token.diag.field.empty())
                r.token.diag.field = "token endpoint " + url.host;
            co_return r;
        }
        token_reply r = read_token_response(resp, clock::now());
        if (r.refresh_token)
            refresh_token = std::move(*r.refresh_token); // rotated (RFC 6749 §6)
        co_return r;
    }

    void close() noexcept override { client.close(); }
};

struct token_source_impl : std::enable_shared_from_this<token_source_impl> {
    asio::any_io_executor ex;
    asio::strand<asio::any_io_executor> strand;
    refresh_policy policy;
    std::unique_ptr<fetcher> fetch;
    asio::steady_timer retry_timer;

    mutable std::mutex m;
    token_cache cache;
    std::vector<asio::any_completion_handler<void(error_code, access_token)>> waiters;
    token_source_snapshot counts;
    bool closed = false;
    std::minstd_rand rng{std::random_device{}()};

    token_source_impl(asio::any_io_executor e, refresh_policy p)
        : ex(std::move(e))
        , strand(asio::make_strand(ex))
        , policy(p)
        , retry_timer(strand)
        , cache(policy)
    {
    }

    void get(asio::any_completion_handler<void(error_code, access_token)> h)
    {
        std::unique_lock lock(m);
        ++counts.gets;
        if (closed) {
            lock.unlock();
            mailroom::detail::post_completion(
                ex, std::move(h), error_code(asio::error::operation_aborted), access_token{});
            return;
        }
        const auto now = clock::now();
        switch (cache.on_get(now)) {
        case token_cache::verdict::use:
        case token_cache::verdict::use_and_refresh: {
            const bool start = cache.in_flight() && waiters.empty() && !refreshing;
            ++counts.cache_hits;
            access_token t{cache.token(), cache.expires_at(), {}};
            if (start)
                refreshing = true;
            lock.unlock();
            mailroom::detail::post_completion(ex, std::move(h), error_code{}, std::move(t));
            if (start)
                start_refresh();
            return;
        }
        case token_cache::verdict::fail: {
            access_token t;
            t.diag = cache.held_diag();
            const error_code ec = cache.held_error();
            lock.unlock();
            mailroom::detail::post_completion(ex, std::move(h), ec, std::move(t));
            return;
        }
        case token_cache::verdict::wait:
            ++counts.joined;
            waiters.push_back(std::move(h));
            return;
        case token_cache::verdict::refresh:
            waiters.push_back(std::move(h));
            refreshing = true;
            lock.unlock();
            start_refresh();
            return;
        }
    }

    bool refreshing = false;

    void start_refresh() { asio::co_spawn(strand, refresh(shared_from_this()), asio::detached); }

    // `self` keeps the source alive while the refresh runs (a parameter, so it is in the
    // coroutine frame from its creation).
    awaitable<void> refresh([[maybe_unused]] std::shared_ptr<token_source_impl> self)
    {
        bool force;
        {
            std::lock_guard lock(m);
            force = cache.force_next();
        }
        token_reply r;
        for (unsigned attempt = 1;; ++attempt) {
            {
                std::lock_guard lock(m);
                if (closed)
                    co_return;
                ++counts.requests;
            }
            r = co_await fetch->fetch(force);
            if (!r.ec || r.ec == asio::error::operation_aborted || r.ec != condition::transient ||
                attempt >= std::max(1u, policy.max_attempts))
                break;
            pool::backoff_options b{policy.retry_initial, policy.retry_max};
            auto wait = pool::detail::backoff_delay(
                b, attempt, std::uniform_real_distribution<double>(0.0, 1.0)(rng));
            if (r.retry_after)
                wait = std::max<duration>(wait, std::chrono::seconds(r.retry_after));
            retry_timer.expires_after(wait);
            auto [tec] = co_await retry_timer.async_wait(use_tuple);
            if (tec)
                break;
        }
        std::vector<asio::any_completion_handler<void(error_code, access_token)>> done;
        access_token out;
        error_code ec = r.ec;
        {
            std::lock_guard lock(m);
            refreshing = false;
            if (closed)
                co_return;
            const auto now = clock::now();
            if (!ec) {
                cache.on_success(now, std::move(r.token.value), r.token.expires_at);
                ++counts.refreshes;
                out = {cache.token(), cache.expires_at(), {}};
            } else {
                cache.on_failure(now, ec, r.token.diag);
                ++counts.failures;
                counts.last_error = ec;
                counts.last_error_detail = r.token.diag.to_string();
                out.diag = r.token.diag;
            }
            done.swap(waiters);
        }
        for (auto& h : done)
            mailroom::detail::post_completion(ex, std::move(h), ec, out);
    }

    void invalidate(std::string_view token)
    {
        std::lock_guard lock(m);
        if (cache.invalidate(token))
            ++counts.invalidations;
    }

    void close() noexcept
    {
        std::vector<asio::any_completion_handler<void(error_code, access_token)>> done;
        {
            std::lock_guard lock(m);
            if (closed)
                return;
            closed = true;
            done.swap(waiters);
        }
        asio::post(strand, [self = shared_from_this()] {
            self->retry_timer.cancel();
            self->fetch->close();
        });
        for (auto& h : done)
            mailroom::detail::post_completion(
                ex, std::move(h), error_code(asio::error::operation_aborted), access_token{});
    }

    token_source_snapshot snapshot() const
    {
        std::lock_guard lock(m);
        token_source_snapshot s = counts;
        const auto now = clock::now();
        s.cached = cache.usable(now);
        s.remaining = s.cached ? cache.expires_at() - now : duration{};
        return s;
    }
};

} // namespace detail

token_source::token_source(std::shared_ptr<detail::token_source_impl> i)
    : impl_(std::move(i))
{
}

token_source::~token_source()
{
    impl_->close();
}

std::shared_ptr<token_source> token_source::from_callback(executor_type ex, token_callback fn,
                                                          refresh_policy policy)
{
    if (!fn)
        throw boost::system::system_error(make_error_code(error::invalid_token_source),
                                          "no token callback");
    auto i = std::make_shared<detail::token_source_impl>(ex, policy);
    i->fetch = std::make_unique<detail::callback_fetcher>(i->strand, std::move(fn));
    return std::shared_ptr<token_source>(new token_source(std::move(i)));
}

result<std::shared_ptr<token_source>> token_source::make_oauth2(executor_type ex,
                                                                oauth2_options opts,
                                                                refresh_policy policy,
                                                                diagnostics& diag)
{
    const auto bad = [&](std::string field, std::string why) {
        diag.field = std::move(field);
        diag.detail = std::move(why);
        return make_error_code(error::invalid_token_source);
    };
    std::optional<detail::rsa_key> key;
    switch (opts.grant) {
    case grant::refresh_token:
        if (opts.refresh_token.empty())
            return bad("refresh_token grant", "no refresh token");
        if (opts.client_id.empty())
            return bad("refresh_token grant", "no client id");
        break;
    case grant::client_credentials:
        if (opts.client_id.empty() || opts.client_secret.empty())
            return bad("client_credentials grant", "needs a client id and a client secret");
        break;
    case grant::jwt_bearer: {
        if (!opts.account)
            return bad("jwt_bearer grant", "no service account");
        std::string why;
        key = detail::rsa_key::parse(opts.account->private_key, why);
        if (!key)
            return bad("service account \"private_key\"", why);
        if (opts.token_url.empty())
            opts.token_url = opts.account->token_uri;
        break;
    }
    }
    if (opts.token_url.empty())
        return bad("token URL", "none given");
    diagnostics url_diag;
    auto u = http::url::parse(opts.token_url, url_diag);
    if (!u)
        return bad("token URL", url_diag.to_string());
    if (opts.assertion_lifetime <= duration::zero() || policy.max_attempts == 0)
        return bad("token source", "a zero assertion lifetime or no attempts");
    auto i = std::make_shared<detail::token_source_impl>(ex, policy);
    i->fetch = std::make_unique<detail::oauth2_fetcher>(i->strand, std::move(opts), std::move(*u),
                                                        std::move(key));
    return std::shared_ptr<token_source>(new token_source(std::move(i)));
}

std::shared_ptr<token_source> token_source::oauth2(executor_type ex, oauth2_options opts,
                                                   refresh_policy policy)
{
    diagnostics diag;
    auto r = make_oauth2(std::move(ex), std::move(opts), policy, diag);
    if (!r)
        throw boost::system::system_error(r.error(), diag.to_string());
    return std::move(*r);
}

void token_source::initiate_get(std::shared_ptr<detail::token_source_impl> i,
                                asio::any_completion_handler<void(error_code, access_token)> h)
{
    i->get(std::move(h));
}

void token_source::invalidate(std::string_view token)
{
    impl_->invalidate(token);
}

void token_source::close() noexcept
{
    impl_->close();
}

token_source_snapshot token_source::snapshot() const
{
    return impl_->snapshot();
}

} // namespace mailroom::auth
