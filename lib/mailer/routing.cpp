#include "routing.hpp"

#include <mailroom/address.hpp>

#include <algorithm>

namespace mailroom::detail {

namespace {

std::string lower(std::string s)
{
    for (auto& c : s)
        if (c >= 'A' && c <= 'Z')
            c = static_cast<char>(c - 'A' + 'a');
    return s;
}

// The domain's canonical form (lower-case A-labels), as the address parser makes it.
std::optional<std::string> canonical(std::string_view domain)
{
    auto a = address::parse("postmaster@" + std::string(domain));
    if (!a)
        return std::nullopt;
    return lower(a->domain_ascii());
}

} // namespace

error_code route_table::add(std::string_view pattern, std::size_t index)
{
    entry e;
    e.index = index;
    if (pattern.starts_with("*.")) {
        e.subdomains = true;
        pattern.remove_prefix(2);
    }
    auto d = canonical(pattern);
    if (!d)
        return make_error_code(error::invalid_domain);
    e.domain = std::move(*d);
    for (const auto& x : entries_)
        if (x.domain == e.domain && x.subdomains == e.subdomains)
            return make_error_code(error::invalid_mailer_options);
    entries_.push_back(std::move(e));
    return {};
}

std::optional<std::size_t> route_table::find(std::string_view domain) const
{
    std::string d = lower(std::string(domain));
    if (!d.empty() && !std::all_of(d.begin(), d.end(), [](unsigned char c) { return c < 0x80; }))
        if (auto c = canonical(d))
            d = std::move(*c);
    const entry* best = nullptr;
    for (const auto& e : entries_) {
        bool match = d == e.domain;
        if (!match && e.subdomains && d.size() > e.domain.size() + 1)
            match = d.ends_with(e.domain) && d[d.size() - e.domain.size() - 1] == '.';
        if (!match)
            continue;
        // Exact beats wildcard; a longer domain beats a shorter one.
        if (!best || (!e.subdomains && best->subdomains) ||
            (e.subdomains == best->subdomains && e.domain.size() > best->domain.size()))
            best = &e;
    }
    if (best)
        return best->index;
    return fallback;
}

} // namespace mailroom::detail
