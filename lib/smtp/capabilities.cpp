// EHLO reply parsing (RFC 5321 §4.1.1.1) into mailroom::smtp::capabilities.
#include <mailroom/smtp/capabilities.hpp>
#include <mailroom/smtp/reply.hpp>

#include "text.hpp"

#include <algorithm>

namespace mailroom::smtp {

namespace {

// RFC 5321 §4.1.1.1: ehlo-keyword = (ALPHA / DIGIT) *(ALPHA / DIGIT / "-").
bool is_ehlo_keyword(std::string_view s) noexcept
{
    if (s.empty() || !detail::is_alnum(s[0]))
        return false;
    return std::all_of(s.begin(), s.end(), [](char c) { return detail::is_alnum(c) || c == '-'; });
}

// RFC 5321 §4.1.1.1: ehlo-param = 1*(%d33-126).
bool is_ehlo_param(std::string_view s) noexcept
{
    return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c > 32 && c < 127; });
}

// RFC 4422 §3.1: sasl-mech = 1*20mech-char, upper-case letters, digits, '-' and '_'. Checked
// after upper-casing: servers send "auth login" too.
bool is_sasl_mech(std::string_view s) noexcept
{
    return !s.empty() && s.size() <= 20 && std::all_of(s.begin(), s.end(), [](char c) {
        return (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
    });
}

void add_auth(std::vector<std::string>& auth, std::string mech)
{
    mech = detail::to_upper(mech);
    if (is_sasl_mech(mech) && std::find(auth.begin(), auth.end(), mech) == auth.end())
        auth.push_back(std::move(mech));
}

// RFC 1870 §3: SIZE [number]; 0 or absent means no fixed maximum.
std::uint64_t parse_size(const std::vector<std::string>& params) noexcept
{
    if (params.empty())
        return 0;
    std::uint64_t v = 0;
    for (char c : params[0]) {
        if (c < '0' || c > '9')
            return 0;
        const auto d = static_cast<std::uint64_t>(c - '0');
        if (v > (UINT64_MAX - d) / 10)
            return 0;
        v = v * 10 + d;
    }
    return v;
}

} // namespace

capabilities capabilities::parse(const reply& ehlo_reply)
{
    capabilities caps;
    if (ehlo_reply.lines.empty())
        return caps;
    caps.greeting = ehlo_reply.lines.front();
    for (std::size_t i = 1; i < ehlo_reply.lines.size(); ++i) {
        // Split on spaces; runs of spaces (and a TAB, which RFC 5321 doesn't allow here but the
        // reply parser lets through) are tolerated as separators.
        std::vector<std::string> words;
        std::string_view line = ehlo_reply.lines[i];
        std::size_t pos = 0;
        while (pos < line.size()) {
            while (pos < line.size() && (line[pos] == ' ' || line[pos] == '\t'))
                ++pos;
            std::size_t end = pos;
            while (end < line.size() && line[end] != ' ' && line[end] != '\t')
                ++end;
            if (end > pos)
                words.emplace_back(line.substr(pos, end - pos));
            pos = end;
        }
        if (words.empty())
            continue;

        extension ext;
        std::string first = std::move(words.front());
        // The pre-standard "AUTH=LOGIN PLAIN" form (draft-myers-smtp-auth, before RFC 2554),
        // still sent beside "AUTH LOGIN PLAIN" for old Outlook clients.
        const bool old_auth = first.size() > 5 && detail::iequals(first.substr(0, 5), "AUTH=");
        if (old_auth) {
            ext.keyword = "AUTH=";
            ext.params.push_back(first.substr(5));
        } else {
            if (!is_ehlo_keyword(first))
                continue;
            ext.keyword = detail::to_upper(first);
        }
        bool ok = true;
        for (std::size_t w = 1; w < words.size(); ++w) {
            ok = ok && is_ehlo_param(words[w]);
            ext.params.push_back(std::move(words[w]));
        }
        if (!ok || (old_auth && !is_ehlo_param(ext.params.front())))
            continue;

        const std::string& k = ext.keyword;
        if (k == "PIPELINING")
            caps.pipelining = true;
        else if (k == "8BITMIME")
            caps.eight_bit_mime = true;
        else if (k == "SMTPUTF8")
            caps.smtputf8 = true;
        else if (k == "DSN")
            caps.dsn = true;
        else if (k == "ENHANCEDSTATUSCODES")
            caps.enhanced_status_codes = true;
        else if (k == "CHUNKING")
            caps.chunking = true;
        else if (k == "BINARYMIME")
            caps.binary_mime = true;
        else if (k == "STARTTLS")
            caps.starttls = true;
        else if (k == "SIZE")
            caps.size = parse_size(ext.params);
        else if (k == "AUTH" || k == "AUTH=") {
            for (const auto& m : ext.params)
                add_auth(caps.auth, m);
        }
        caps.extensions.push_back(std::move(ext));
    }
    return caps;
}

const capabilities::extension* capabilities::find(std::string_view keyword) const noexcept
{
    for (const auto& e : extensions) {
        if (detail::iequals(e.keyword, keyword))
            return &e;
    }
    return nullptr;
}

bool capabilities::has(std::string_view keyword) const noexcept
{
    return find(keyword) != nullptr;
}

bool capabilities::has_auth(std::string_view mechanism) const noexcept
{
    return std::any_of(auth.begin(), auth.end(),
                       [&](const std::string& m) { return detail::iequals(m, mechanism); });
}

} // namespace mailroom::smtp
