// The session set-up as a resumable algo: each `BOOST_ASIO_CORO_YIELD return` hands the driver
// one action; the driver resumes with its result. Locals that live across a yield are members.

#include "connect_algo.hpp"
#include "command.hpp"

#include <mailroom/auth/token_source.hpp>

#include <mailroom/smtp/reply_error.hpp>

#include <boost/asio/yield.hpp>

namespace mailroom::smtp::detail {

connect_algo::connect_algo(const client_options& opts, session_state& session, diagnostics& diag,
                           const session_log& log, bool token_retry)
    : opts_(opts)
    , session_(session)
    , diag_(diag)
    , log_(log)
    , token_retry_(token_retry)
{
}

action connect_algo::fail(std::string_view step, error_code ec, std::string detail)
{
    return action::finish(record_failure(diag_, log_, step, ec, std::move(detail)));
}

action connect_algo::fail_reply(std::string_view step, const reply& r)
{
    return fail(step, unexpected_reply(r), r.to_string());
}

// HELO where the server refuses EHLO, and only where TLS isn't required: a server that
// doesn't know EHLO can't offer STARTTLS (RFC 5321 §3.2).
bool connect_algo::may_helo() const noexcept
{
    return (r_.code == 500 || r_.code == 502) && !session_.tls &&
           (opts_.tls.mode == tls_mode::none || opts_.tls.mode == tls_mode::opportunistic);
}

action connect_algo::resume(const io_result& io)
{
    const bool wants_starttls =
        opts_.tls.mode == tls_mode::required || opts_.tls.mode == tls_mode::opportunistic;
    const bool tls_required = opts_.tls.mode == tls_mode::required;
    reenter(coro_)
    {
        if (opts_.tls.mode == tls_mode::implicit) {
            yield return action::handshake();
            if (io.ec)
                return action::finish(io.ec); // the driver has said why
            session_.tls = true;
        }
        yield return action::read(r_, phase::greeting);
        if (io.ec)
            return fail("greeting", io.ec);
        log_.server_reply(r_);
        // RFC 5321 §4.2.1, §4.3.2: every reply is judged by its first digit. 220 is the
        // greeting; another 2yz still means "go ahead".
        if (r_.code / 100 != 2)
            return fail_reply("greeting", r_);

        // EHLO; after STARTTLS, EHLO again (RFC 3207 §4.2).
        for (;;) {
            out_.clear();
            if (auto ec = format_ehlo(out_, opts_.helo_name))
                return fail("EHLO", ec, "EHLO name '" + opts_.helo_name + "' is not a domain");
            log_.client_lines(out_);
            yield return action::write(out_, phase::command);
            if (io.ec)
                return fail("EHLO", io.ec);
            yield return action::read(r_, phase::command);
            if (io.ec)
                return fail("EHLO", io.ec);
            log_.server_reply(r_);
            if (r_.code / 100 == 2) {
                session_.caps = capabilities::parse(r_);
            } else {
                if (!may_helo())
                    return fail_reply("EHLO", r_);
                out_.clear();
                (void)format_helo(out_, opts_.helo_name);
                log_.client_lines(out_);
                yield return action::write(out_, phase::command);
                if (io.ec)
                    return fail("HELO", io.ec);
                yield return action::read(r_, phase::command);
                if (io.ec)
                    return fail("HELO", io.ec);
                log_.server_reply(r_);
                if (r_.code / 100 != 2)
                    return fail_reply("HELO", r_);
                session_.caps = capabilities{};
            }
            if (session_.tls || !wants_starttls)
                break;

            if (!session_.caps.starttls) {
                if (tls_required)
                    return fail("STARTTLS", make_error_code(error::starttls_unavailable),
                                "the server does not offer STARTTLS");
                break;
            }
            out_.clear();
            format_starttls(out_);
            log_.client_lines(out_);
            yield return action::write(out_, phase::command);
            if (io.ec)
                return fail("STARTTLS", io.ec);
            yield return action::read(r_, phase::command);
            if (io.ec)
                return fail("STARTTLS", io.ec);
            log_.server_reply(r_);
            // A 3yz can't answer STARTTLS: out of step whatever the TLS mode.
            if (r_.code / 100 == 3)
                return fail_reply("STARTTLS", r_);
            if (r_.code / 100 != 2) {
                if (tls_required)
                    return fail("STARTTLS", make_error_code(error::starttls_unavailable),
                                r_.to_string());
                break;
            }
            // RFC 3207 §5 (CVE-2011-0411): bytes that arrived with the 220 were sent before
            // TLS and could be an attacker's "replies" for the protected session.
            if (io.more_buffered)
                return fail("STARTTLS", make_error_code(error::starttls_injection),
                            "the server sent data after its 220 reply, before the TLS handshake");
            yield return action::handshake();
            if (io.ec)
                return action::finish(io.ec);
            session_.tls = true;
            // Everything learned before TLS is forgotten (RFC 3207 §4.2).
            session_.caps = capabilities{};
        }

        if (opts_.auth) {
            if (opts_.auth->tokens) {
                yield return action::get_token();
                if (io.ec)
                    return fail("AUTH token", io.ec, io.token_detail);
                token_ = io.token;
            }
            if (auto ec = start_auth_exchange())
                return action::finish(ec);
            for (attempt_ = 0;; ++attempt_) {
                out_.clear();
                {
                    auto ex = auth_exchange::start(*mech_, creds_, out_);
                    if (!ex)
                        return fail("AUTH", ex.error());
                    exchange_.emplace(std::move(*ex));
                }
                response_line_ = false;
                for (;;) {
                    log_.client_lines(out_, response_line_);
                    yield return action::write(out_, phase::command);
                    if (io.ec) {
                        note_lost_retry(io.ec);
                        return fail("AUTH", io.ec);
                    }
                    yield return action::read(r_, phase::command);
                    if (io.ec) {
                        note_lost_retry(io.ec);
                        return fail("AUTH", io.ec);
                    }
                    log_.server_reply(r_);
                    out_.clear();
                    auth_ec_ = {};
                    if (exchange_->on_reply(r_, out_, auth_ec_) == auth_exchange::step::done)
                        break;
                    response_line_ = exchange_->awaiting_response_line();
                }
                if (!auth_ec_)
                    break;
                record_failure(diag_, log_, "AUTH " + std::string(to_string(*mech_)), auth_ec_,
                               auth_ec_.category() == reply_category() ? r_.to_string()
                                                                       : auth_ec_.message());
                // One retry with a refreshed token when the server refused the token
                // (RFC 7628 §3.2.2: the client may try again with a new token).
                if (bearer_mechanism() && attempt_ == 0 &&
                    auth_ec_.category() == reply_category() && auth_ec_.value() / 100 == 5 &&
                    opts_.auth->tokens && token_retry_) {
                    // The source drops the refused token (unless another connection already
                    // had it replaced) and the next get refreshes: one refresh for many.
                    opts_.auth->tokens->invalidate(creds_.bearer_token);
                    yield return action::get_token();
                    if (io.ec)
                        return fail("AUTH token", io.ec, io.token_detail);
                    creds_.bearer_token = io.token;
                    log_(log_level::info, "the server refused the access token: retrying AUTH "
                                          "with a refreshed one");
                    continue;
                }
                if (bearer_mechanism() && attempt_ == 0 &&
                    auth_ec_.category() == reply_category() && auth_ec_.value() / 100 == 5 &&
                    opts_.auth->token_provider && !opts_.auth->tokens) {
                    creds_.bearer_token = opts_.auth->token_provider(true);
                    if (!creds_.bearer_token.empty())
                        continue;
                }
                return action::finish(auth_ec_);
            }
            session_.auth_used = *mech_;
        }
        return action::finish({});
    }
    return action::finish({});
}

bool connect_algo::bearer_mechanism() const noexcept
{
    return *mech_ == auth_mechanism::xoauth2 || *mech_ == auth_mechanism::oauthbearer;
}

// The retry with a refreshed token found the connection closed: the driver may try once more
// on a new connection (some servers close after a failed AUTH).
void connect_algo::note_lost_retry(error_code ec)
{
    if (attempt_ > 0 && opts_.auth->tokens && token_retry_ && ec == error::connection_lost)
        session_.token_retry_needs_reconnect = true;
}

// Picks the mechanism: the strongest both sides allow, on a protected channel only unless the
// caller allowed plaintext.
error_code connect_algo::start_auth_exchange()
{
    const credentials& c = *opts_.auth;
    creds_ = {};
    creds_.username = c.username;
    creds_.password = c.password;
    creds_.host = opts_.host;
    creds_.port = opts_.port;
    if (c.tokens)
        creds_.bearer_token = token_;
    else if (c.token_provider)
        creds_.bearer_token = c.token_provider(false);
    std::vector<auth_mechanism> allowed;
    if (c.mechanism)
        allowed.push_back(*c.mechanism);
    else
        allowed.assign(std::begin(all_auth_mechanisms), std::end(all_auth_mechanisms));
    const bool protected_channel = session_.tls || c.allow_plaintext;
    auto mech = choose_mechanism(session_.caps.auth, creds_, protected_channel, allowed);
    if (!mech) {
        // Say so plainly when the only thing missing is TLS.
        if (!protected_channel && choose_mechanism(session_.caps.auth, creds_, true, allowed)) {
            // Opportunistic TLS that didn't happen (STARTTLS not offered, or refused) may be
            // an attacker on the path stripping it: with credentials to send, TLS was needed,
            // so this is starttls_unavailable, transient like it (a later attempt, or another
            // route, may have TLS; bouncing would let the attacker destroy mail). With TLS
            // turned off (tls_mode::none) it is the configuration that refuses:
            // plaintext_auth_refused, permanent.
            if (opts_.tls.mode == tls_mode::opportunistic)
                return record_failure(diag_, log_, "STARTTLS",
                                      make_error_code(error::starttls_unavailable),
                                      "no TLS (STARTTLS not offered or refused), and credentials "
                                      "are never sent without it");
            return record_failure(diag_, log_, "AUTH",
                                  make_error_code(error::plaintext_auth_refused),
                                  "credentials would be sent without TLS");
        }
        return record_failure(diag_, log_, "AUTH", mech.error(),
                              "no usable mechanism among the server's");
    }
    mech_ = *mech;
    return {};
}

} // namespace mailroom::smtp::detail

#include <boost/asio/unyield.hpp>
