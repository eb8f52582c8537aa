// One send as a resumable algo: each `yield return` hands the driver one action; the driver
// resumes with its result. Locals that live across a yield are members.

#include "send_algo.hpp"
#include "command.hpp"
#include "envelope_verdict.hpp"

#include <mailroom/smtp/reply_error.hpp>

#include <boost/asio/error.hpp>

#include <boost/asio/yield.hpp>

namespace mailroom::smtp::detail {

error_code format_envelope(const mime::message& m, const send_options& o, const capabilities& caps,
                           bool bdat, std::string& out)
{
    const envelope& env = m.envelope();
    if (env.recipients.empty())
        return make_error_code(error::no_recipients);
    if (caps.size && *caps.size > 0 && m.size() > *caps.size)
        return make_error_code(error::size_exceeded);
    if (env.smtputf8 && !caps.smtputf8)
        return make_error_code(error::smtputf8_unavailable);
    if (env.eight_bit && !caps.eight_bit_mime)
        return make_error_code(error::eight_bit_unavailable);
    mail_parameters mp;
    if (caps.size)
        mp.size = m.size();
    if (env.eight_bit)
        mp.body = body_type::eight_bit_mime;
    mp.smtputf8 = env.smtputf8;
    rcpt_parameters rp;
    if (caps.dsn) {
        // RFC 3461: only where the server offers DSN; elsewhere the requests are dropped
        // rather than failing the message.
        const dsn_options& d = o.dsn;
        using rc = dsn_options::return_content;
        mp.ret = d.ret == rc::full      ? dsn_ret::full
                 : d.ret == rc::headers ? dsn_ret::headers
                                        : dsn_ret::unspecified;
        mp.envid = d.envid;
        auto n = dsn_notify::unspecified;
        if (d.notify_never)
            n = dsn_notify::never;
        if (d.notify_success)
            n = n | dsn_notify::success;
        if (d.notify_failure)
            n = n | dsn_notify::failure;
        if (d.notify_delay)
            n = n | dsn_notify::delay;
        rp.notify = n;
    }
    // Formatted straight into the write buffer; taken back out on an error.
    const std::size_t old_size = out.size();
    auto undo = [&](error_code ec) {
        out.resize(old_size);
        return ec;
    };
    if (auto ec = format_mail_from(out, env.from, mp))
        return undo(ec);
    for (const address& a : env.recipients) {
        if (caps.dsn && o.dsn.original_recipient && !a.needs_smtputf8())
            rp.orcpt = a.str();
        if (auto ec = format_rcpt_to(out, a, rp))
            return undo(ec);
    }
    if (!bdat)
        format_data(out);
    return {};
}

send_algo::send_algo(const params& p, delivery_report& report)
    : p_(p)
    , rep_(report)
    , pipe_(p.pipelining && p.session.caps.pipelining)
    , bdat_(p.chunking && p.session.caps.chunking)
{
}

action send_algo::done(error_code ec, std::string_view step, std::string detail,
                       std::string_view close)
{
    if (ec) {
        rep_.diag.field = std::string(step);
        rep_.diag.detail = detail.empty() ? ec.message() : std::move(detail);
    }
    if (cancelled_ && rep_.outcome != outcome::unknown)
        ec = boost::asio::error::operation_aborted;
    return action::finish(ec, close);
}

// An I/O failure before the final dot: nothing was delivered, the connection is gone.
action send_algo::lost(error_code ec, std::string_view step)
{
    close_why_ = ec.message();
    return done(ec, step, {}, close_why_);
}

// A 421 closes the connection at once (RFC 5321 §3.8), so the replies to the rest of a
// pipelined flight never come: the 421, not the lost connection, is the answer.
action send_algo::lost_after(error_code ec, std::string_view step)
{
    const reply* closing = mail_r_.code == 421 ? &mail_r_ : nullptr;
    for (const auto& rs : rep_.recipients)
        if (!closing && rs.response.code == 421)
            closing = &rs.response;
    if (!closing)
        return lost(ec, step);
    rep_.refusal = *closing;
    return done(make_error_code(*closing), closing == &mail_r_ ? "MAIL FROM" : "RCPT TO",
                closing->to_string(), "421 from the server");
}

// After the write holding the final dot began: the message may have been delivered
// (RFC 5321 §4.5.3.2 and §6.1): never a retryable failure.
action send_algo::unknown(error_code cause, std::string_view step)
{
    close_why_ = cause.message();
    rep_.outcome = outcome::unknown;
    return done(make_error_code(error::delivery_status_unknown), step,
                "after the end of the message data: " + cause.message(), close_why_);
}

std::string_view send_algo::next_line()
{
    const std::string& out = p_.out;
    const std::size_t e = out.find("\r\n", pos_) + 2;
    std::string_view line(out.data() + pos_, e - pos_);
    pos_ = e;
    return line;
}

action send_algo::resume(const io_result& io)
{
    std::string& out = p_.out;
    reenter(coro_)
    {
        rep_.message_id = p_.msg.message_id();
        rep_.recipients.clear();
        for (const address& a : p_.msg.envelope().recipients)
            rep_.recipients.push_back({a, {}});

        if (cancelled_) {
            // Cancelled while its envelope rode behind the previous message: its replies are
            // on the way, so the session can't be resynchronised. Start afresh.
            return done(boost::asio::error::operation_aborted, "queued", {}, "operation cancelled");
        }
        out.clear();
        if (!p_.envelope_sent) {
            if (auto ec = format_envelope(p_.msg, p_.options, p_.session.caps, bdat_, out))
                return done(ec, "envelope");
        }

        // MAIL, RCPT, DATA: in one flight where the server pipelines (RFC 2920 §3.1), every
        // reply read and checked in order; else one at a time.
        if (pipe_) {
            if (!p_.envelope_sent) {
                p_.log.client_lines(out);
                yield return action::write(out, phase::mail);
                if (io.ec)
                    return lost(io.ec, "MAIL FROM");
            }
            yield return action::read(mail_r_, phase::mail);
            if (io.ec)
                return lost(io.ec, "MAIL FROM");
            p_.log.server_reply(mail_r_);
            for (i_ = 0; i_ < rep_.recipients.size(); ++i_) {
                yield return action::read(rep_.recipients[i_].response, phase::rcpt);
                if (io.ec)
                    return lost_after(io.ec, "RCPT TO");
                p_.log.server_reply(rep_.recipients[i_].response);
            }
            if (!bdat_) {
                data_sent_ = true;
                yield return action::read(data_r_, phase::data);
                if (io.ec)
                    return lost_after(io.ec, "DATA");
                p_.log.server_reply(data_r_);
            }
        } else {
            // Lock-step: the formatted envelope, one line at a time.
            pos_ = 0;
            line_ = next_line();
            p_.log.client_lines(line_);
            yield return action::write(line_, phase::mail);
            if (io.ec)
                return lost(io.ec, "MAIL FROM");
            yield return action::read(mail_r_, phase::mail);
            if (io.ec)
                return lost(io.ec, "MAIL FROM");
            p_.log.server_reply(mail_r_);
            if (mail_r_.code / 100 == 2) {
                for (i_ = 0; i_ < rep_.recipients.size(); ++i_) {
                    line_ = next_line();
                    p_.log.client_lines(line_);
                    yield return action::write(line_, phase::rcpt);
                    if (io.ec)
                        return lost(io.ec, "RCPT TO");
                    yield return action::read(rep_.recipients[i_].response, phase::rcpt);
                    if (io.ec)
                        return lost(io.ec, "RCPT TO");
                    p_.log.server_reply(rep_.recipients[i_].response);
                }
                if (!bdat_ && rep_.accepted_count() > 0) {
                    data_sent_ = true;
                    line_ = next_line();
                    p_.log.client_lines(line_);
                    yield return action::write(line_, phase::data);
                    if (io.ec)
                        return lost(io.ec, "DATA");
                    yield return action::read(data_r_, phase::data);
                    if (io.ec)
                        return lost(io.ec, "DATA");
                    p_.log.server_reply(data_r_);
                }
            }
        }

        {
            const auto verdict =
                judge_envelope(mail_r_, rep_.recipients, data_sent_ ? &data_r_ : nullptr);
            using verdict_kind = envelope_verdict::kind;
            if (verdict.k == verdict_kind::out_of_step)
                return done(make_error_code(error::protocol_error), "envelope",
                            "a reply that does not answer its command: the replies are out of "
                            "step",
                            "replies out of step with the commands");
            if (verdict.k == verdict_kind::closing) {
                rep_.refusal = *verdict.cause;
                return done(make_error_code(*verdict.cause), verdict.step,
                            verdict.cause->to_string(), "421 from the server");
            }
            if (verdict.k == verdict_kind::refused) {
                refused_ec_ = make_error_code(*verdict.cause);
                refused_step_ = verdict.step;
                refusal_ = *verdict.cause;
                end_empty_data_ = verdict.end_empty_data;
                rset_ = verdict.rset;
            }
        }

        // Nothing to deliver: say why, and leave the session clean for the next message.
        if (refused_ec_) {
            if (end_empty_data_) {
                // The server wants a message although none may be sent: end it empty
                // (RFC 2920 §3.1), then RSET.
                p_.log.client_lines(".\r\n");
                yield return action::write(".\r\n", phase::data_end);
                if (io.ec)
                    return lost(io.ec, "DATA");
                yield return action::read(r_, phase::data_end);
                if (io.ec)
                    return lost(io.ec, "DATA");
                p_.log.server_reply(r_);
            }
            if (rset_) {
                out.clear();
                format_rset(out);
                p_.log.client_lines(out);
                yield return action::write(out, phase::command);
                if (!io.ec) {
                    yield return action::read(r_, phase::command);
                    if (!io.ec) {
                        p_.log.server_reply(r_);
                        if (r_.code / 100 != 2)
                            close_why_ = "RSET refused";
                    }
                }
                if (io.ec)
                    close_why_ = io.ec.message();
            }
            rep_.outcome = outcome::failed;
            rep_.refusal = refusal_;
            return done(refused_ec_, refused_step_, refusal_.to_string(), close_why_);
        }

        // The message data. From here on a lost connection may have delivered it.
        reader_.emplace(p_.msg.open());
        stuffer_.emplace(bdat_ ? dot_stuffer::dot_stuffing::off : dot_stuffer::dot_stuffing::on);
        out.clear();
        for (;;) {
            {
                error_code ec;
                const std::string_view chunk = reader_->next(ec);
                if (ec) {
                    // The message can't be read (file attachment gone): nothing final was
                    // sent, but the session is mid-DATA; drop it.
                    return done(ec, "reading the message", {}, "message unreadable");
                }
                bool last = chunk.empty();
                if (bdat_) {
                    // Chunks are gathered up to a write block per BDAT; the last one carries
                    // LAST (RFC 3030 §2), so no empty "BDAT 0 LAST" is needed.
                    if (!last) {
                        if (auto e2 = stuffer_->feed(chunk, pending_)) {
                            close_why_ = e2.message();
                            return done(e2, "message data", {}, close_why_);
                        }
                        last = reader_->remaining() == 0;
                    }
                    if (last || pending_.size() >= write_block) {
                        if (last)
                            stuffer_->finish(pending_);
                        format_bdat(out, pending_.size(), last);
                        out += pending_;
                        pending_.clear();
                        ++bdat_commands_;
                    }
                } else if (!last) {
                    if (auto e2 = stuffer_->feed(chunk, out)) {
                        close_why_ = e2.message();
                        return done(e2, "message data", {}, close_why_);
                    }
                } else {
                    stuffer_->finish(out);
                }
                if (last)
                    break;
                flush_ = out.size() >= write_block;
            }
            if (flush_) {
                yield return action::write(out, phase::data_block);
                if (io.ec)
                    return lost(io.ec, "message data");
                out.clear();
            }
        }
        if (p_.log.enabled(log_level::trace))
            p_.log(log_level::trace,
                   "C: [message data, " + std::to_string(p_.msg.size()) + " octets]");
        if (pipe_ && p_.next_envelope && *p_.next_envelope) {
            const std::size_t before_next = out.size();
            next_pipelined_ = (*p_.next_envelope)(out);
            if (out.size() > before_next)
                p_.log.client_lines(std::string_view(out).substr(before_next));
        }
        yield return action::write(out, phase::data_block);
        if (io.ec)
            return unknown(io.ec, "message data");
        out.clear();

        // One reply per BDAT (RFC 3030 §2), or the reply to the final dot.
        replies_ = bdat_ ? bdat_commands_ : 1;
        for (i_ = 0; i_ < replies_; ++i_) {
            yield return action::read(r_, phase::data_end);
            if (io.ec)
                return unknown(io.ec, "final reply");
            p_.log.server_reply(r_);
            // A 3yz can't answer the end of the data (RFC 5321 §4.3.2): neither accepted
            // nor refused, the message may have been delivered, like a reply that never came.
            if (r_.code / 100 == 3)
                return unknown(make_error_code(error::protocol_error), "final reply");
            if (!refused_final_ && (r_.code / 100 != 2 || i_ + 1 == replies_)) {
                final_r_ = r_;
                refused_final_ = r_.code / 100 != 2;
            }
        }
        rep_.final_reply = final_r_;
        if (final_r_.code / 100 != 2) {
            rep_.outcome = outcome::failed;
            rep_.refusal = final_r_;
            return done(make_error_code(final_r_), "final reply", final_r_.to_string(),
                        final_r_.code == 421 ? "421 from the server" : "");
        }
        rep_.queue_id = find_queue_id(final_r_);
        rep_.outcome =
            rep_.accepted_count() == rep_.recipients.size() ? outcome::delivered : outcome::partial;
        // With no command outstanding, the server has nothing to say: bytes waiting now are
        // replies nobody asked for, which could be mistaken for the next transaction's.
        if (!next_pipelined_ && io.more_buffered)
            return done({}, "", {}, "unsolicited data from the server");
        return done({}, "");
    }
    return action::finish({});
}

} // namespace mailroom::smtp::detail

#include <boost/asio/unyield.hpp>
