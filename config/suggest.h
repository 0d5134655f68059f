// "Did you mean": the known name closest to a misspelt one, for unknown keys in server.toml
// and unknown options in uWSGI ini files. Master only; no Python.
#pragma once

#include <span>
#include <string>
#include <string_view>

namespace aiowsgi::config {

// The candidate nearest |name| by edit distance (insertions, deletions, substitutions and
// swaps of neighbours, case-insensitive, '-' and '_' alike), or "" when none is close
// enough to be a plausible typo: at most a third of the longer name's letters, and at least 1.
std::string closest_name(std::string_view name, std::span<const std::string_view> candidates);

// " (did you mean NAME?)" for closest_name's answer, or "" when there is none.
std::string did_you_mean(std::string_view name, std::span<const std::string_view> candidates);

}  // namespace aiowsgi::config
