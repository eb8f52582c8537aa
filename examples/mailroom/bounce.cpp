// mailroom bounce: a delivery-status report (a bounce) read with mime::parse_delivery_status
// and printed, as text or as JSON (Boost.JSON, compiled into the library by core/detail).

#include "cli.hpp"

#include <mailroom/mime/delivery_status.hpp>

#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>

#include <algorithm>
#include <cstdio>
#include <optional>
#include <string>

namespace mailroom::cli {

namespace {

namespace json = boost::json;
using mime::typed_value;

// Report text is the sender's or a remote MTA's: controls are shown escaped, never sent to the
// terminal as they are.
std::string printable(std::string_view s)
{
    std::string out;
    for (const unsigned char c : s) {
        if (c < 0x20 || c == 0x7F) {
            char buf[8];
            std::snprintf(buf, sizeof buf, "\\x%02X", c);
            out += buf;
        } else {
            out += static_cast<char>(c);
        }
    }
    return out;
}

std::string typed_text(const typed_value& t)
{
    return t.type.empty() ? t.value : t.type + "; " + t.value;
}

json::value typed_json(const std::optional<typed_value>& t)
{
    if (!t)
        return nullptr;
    return json::object{{"type", t->type}, {"value", t->value}};
}

json::value text_json(const std::optional<std::string>& s)
{
    if (!s)
        return nullptr;
    return json::value(*s);
}

json::array fields_json(const std::vector<std::pair<std::string, std::string>>& fields)
{
    json::array a;
    for (const auto& [name, value] : fields)
        a.push_back(json::object{{"name", name}, {"value", value}});
    return a;
}

const char* error_name(error_code ec)
{
    if (ec == error::not_a_delivery_status)
        return "not_a_delivery_status";
    if (ec == error::delivery_status_too_large)
        return "delivery_status_too_large";
    return "error";
}

json::object report_json(const mime::delivery_status& r, error_code ec, const diagnostics& diag)
{
    json::object o;
    o["complete"] = r.complete;
    if (ec)
        o["error"] = json::object{{"code", error_name(ec)},
                                  {"message", ec.message()},
                                  {"field", diag.field},
                                  {"detail", diag.detail}};
    else
        o["error"] = nullptr;
    o["reporting_mta"] = typed_json(r.reporting_mta);
    o["dsn_gateway"] = typed_json(r.dsn_gateway);
    o["received_from_mta"] = typed_json(r.received_from_mta);
    o["original_envelope_id"] = text_json(r.original_envelope_id);
    o["arrival_date"] = text_json(r.arrival_date);
    o["global"] = r.global;
    o["other_fields"] = fields_json(r.other_fields);
    json::array rcpts;
    for (const mime::dsn_recipient& d : r.recipients) {
        json::object x;
        x["final_recipient"] = typed_json(d.final_recipient);
        x["original_recipient"] = typed_json(d.original_recipient);
        x["action"] =
            d.action ? json::value(std::string(mime::to_string(*d.action))) : json::value(nullptr);
        if (d.status)
            x["status"] = json::object{{"code", d.status->code},
                                       {"class", d.status->klass},
                                       {"subject", d.status->subject},
                                       {"detail", d.status->detail},
                                       {"text", d.status->text}};
        else
            x["status"] = nullptr;
        x["remote_mta"] = typed_json(d.remote_mta);
        x["diagnostic_code"] = typed_json(d.diagnostic_code);
        x["last_attempt_date"] = text_json(d.last_attempt_date);
        x["will_retry_until"] = text_json(d.will_retry_until);
        x["final_log_id"] = text_json(d.final_log_id);
        x["other_fields"] = fields_json(d.other_fields);
        rcpts.push_back(std::move(x));
    }
    o["recipients"] = std::move(rcpts);
    if (r.original)
        o["original"] = json::object{{"message_id", text_json(r.original->message_id)},
                                     {"subject", text_json(r.original->subject)},
                                     {"from", text_json(r.original->from)},
                                     {"to", text_json(r.original->to)},
                                     {"date", text_json(r.original->date)},
                                     {"headers_only", r.original->headers_only}};
    else
        o["original"] = nullptr;
    return o;
}

void line(const char* label, const std::string& value, int indent = 0)
{
    std::printf("%*s%-*s %s\n", indent, "", 20 - indent, label, printable(value).c_str());
}

void print_text(const mime::delivery_status& r)
{
    if (r.reporting_mta)
        line("reporting MTA", typed_text(*r.reporting_mta));
    if (r.dsn_gateway)
        line("DSN gateway", typed_text(*r.dsn_gateway));
    if (r.received_from_mta)
        line("received from", typed_text(*r.received_from_mta));
    if (r.arrival_date)
        line("arrival date", *r.arrival_date);
    if (r.original_envelope_id)
        line("envelope id", *r.original_envelope_id);
    for (const auto& [name, value] : r.other_fields)
        line((name + ":").c_str(), value);
    if (r.original) {
        line("original message",
             r.original->headers_only ? "(headers returned)" : "(message returned)");
        if (r.original->message_id)
            line("message-id", *r.original->message_id, 2);
        if (r.original->from)
            line("from", *r.original->from, 2);
        if (r.original->to)
            line("to", *r.original->to, 2);
        if (r.original->subject)
            line("subject", *r.original->subject, 2);
        if (r.original->date)
            line("date", *r.original->date, 2);
    }
    for (const mime::dsn_recipient& d : r.recipients) {
        std::printf("recipient %s\n",
                    d.final_recipient ? printable(typed_text(*d.final_recipient)).c_str() : "?");
        if (d.action)
            line("action", std::string(mime::to_string(*d.action)), 2);
        if (d.status)
            line("status",
                 d.status->code + (d.status->text.empty() ? "" : " (" + d.status->text + ")"), 2);
        if (d.original_recipient)
            line("original", typed_text(*d.original_recipient), 2);
        if (d.remote_mta)
            line("remote MTA", typed_text(*d.remote_mta), 2);
        if (d.diagnostic_code)
            line("diagnostic", typed_text(*d.diagnostic_code), 2);
        if (d.last_attempt_date)
            line("last attempt", *d.last_attempt_date, 2);
        if (d.will_retry_until)
            line("retry until", *d.will_retry_until, 2);
        if (d.final_log_id)
            line("log id", *d.final_log_id, 2);
        for (const auto& [name, value] : d.other_fields)
            line((name + ":").c_str(), value, 2);
    }
}

} // namespace

int bounce_main(std::span<char*> argv)
{
    bool json_out = false;
    std::optional<std::string> path;
    mime::delivery_status_options opts;
    for (std::size_t i = 0; i < argv.size(); ++i) {
        const std::string_view a = argv[i];
        if (a == "--help" || a == "-h") {
            std::printf("%s", bounce_usage());
            return ex_ok;
        }
        if (a == "--version") {
            print_version();
            return ex_ok;
        }
        if (a == "--json") {
            json_out = true;
        } else if (a == "--max-size" || a.starts_with("--max-size=")) {
            std::string v;
            if (a != "--max-size")
                v = std::string(a.substr(a.find('=') + 1));
            else if (i + 1 < argv.size())
                v = argv[++i];
            else
                throw failure(ex_usage, "--max-size needs a value");
            const std::uint64_t n = parse_size("--max-size", v);
            opts.max_size = static_cast<std::size_t>(n);
            // Read past it (up to the tool's input cap, 64 MiB), so the parser reads what fits
            // and says the rest was left, rather than the read failing with nothing shown.
            set_max_input_size(std::max<std::uint64_t>(max_input_size(), n + 1));
        } else if (a.starts_with("-") && a != "-") {
            throw failure(ex_usage, "bounce: unknown option " + std::string(a));
        } else if (path) {
            throw failure(ex_usage, "bounce: one report at a time ('" + *path + "' and '" +
                                        std::string(a) + "')");
        } else {
            path = std::string(a);
        }
    }
    if (!path)
        throw failure(ex_usage, "bounce: no report to read (usage: mailroom bounce [--json] "
                                "[--max-size SIZE] FILE|-)");
    const std::string bytes = read_input_file("bounce", *path);

    mime::delivery_status report;
    diagnostics diag;
    const error_code ec = mime::parse_delivery_status(bytes, report, diag, opts);
    if (json_out)
        std::printf("%s\n", json::serialize(report_json(report, ec, diag)).c_str());
    else
        print_text(report);
    std::fflush(stdout);
    if (ec)
        throw failure(ex_dataerr, "bounce: " + error_text(ec, diag.to_string()) +
                                      (report.recipients.empty() && !report.reporting_mta
                                           ? ""
                                           : " (what could be read is shown)"));
    return ex_ok;
}

const char* bounce_usage()
{
    return "usage: mailroom bounce [--json] [--max-size SIZE] FILE|-\n"
           "reads a delivery-status report (a bounce: RFC 3464 in a multipart/report, as MTAs\n"
           "send them; an mbox file's leading \"From \" line is skipped) and prints the\n"
           "reporting MTA, each recipient's action, status code and diagnostic, and the\n"
           "returned message's Message-ID, Subject, From and To.\n"
           "  --json                 the report as one JSON object on stdout\n"
           "  --max-size SIZE        read at most SIZE octets (K, M, G suffixes; default 10M):\n"
           "                         a longer report is read that far\n"
           "exit status: 0 read whole; 65 not a report, or a malformed or oversized one (what\n"
           "could be read is still printed, and \"error\" says what was wrong); 66 the file\n"
           "can't be read; 64 usage\n";
}

} // namespace mailroom::cli
