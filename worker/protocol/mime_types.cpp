#include "worker/protocol/mime_types.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <string>
#include <utility>

#include "common/unique_fd.h"

namespace aiowsgi::worker {
namespace {

// What a site's static folder mostly holds; /etc/mime.types, when present, overrides these.
constexpr std::pair<std::string_view, std::string_view> kBuiltIn[] = {
    {"html", "text/html"},       {"htm", "text/html"},         {"css", "text/css"},
    {"js", "text/javascript"},   {"mjs", "text/javascript"},   {"json", "application/json"},
    {"map", "application/json"}, {"txt", "text/plain"},        {"csv", "text/csv"},
    {"xml", "application/xml"},  {"svg", "image/svg+xml"},     {"png", "image/png"},
    {"jpg", "image/jpeg"},       {"jpeg", "image/jpeg"},       {"gif", "image/gif"},
    {"webp", "image/webp"},      {"avif", "image/avif"},       {"ico", "image/vnd.microsoft.icon"},
    {"woff", "font/woff"},       {"woff2", "font/woff2"},      {"ttf", "font/ttf"},
    {"otf", "font/otf"},         {"wasm", "application/wasm"}, {"pdf", "application/pdf"},
    {"zip", "application/zip"},  {"gz", "application/gzip"},   {"mp4", "video/mp4"},
    {"webm", "video/webm"},      {"mp3", "audio/mpeg"},        {"ogg", "audio/ogg"},
    {"wav", "audio/wav"},
};

constexpr std::string_view kDefault = "application/octet-stream";

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\r'; }

}  // namespace

MimeTypes::MimeTypes() {
  for (const auto& [ext, type] : kBuiltIn) by_ext_.emplace(ext, type);
}

size_t MimeTypes::add_mime_types_text(std::string_view text) {
  size_t added = 0;
  while (!text.empty()) {
    size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text.remove_prefix(nl == std::string_view::npos ? text.size() : nl + 1);
    if (size_t hash = line.find('#'); hash != std::string_view::npos) line = line.substr(0, hash);
    std::string_view type;
    size_t i = 0;
    while (i < line.size()) {
      while (i < line.size() && is_space(line[i])) ++i;
      size_t start = i;
      while (i < line.size() && !is_space(line[i])) ++i;
      if (i == start) break;
      std::string_view word = line.substr(start, i - start);
      if (type.empty()) {
        // A media type has a '/'; a line without one is not an entry.
        if (word.find('/') == std::string_view::npos) break;
        type = word;
      } else {
        by_ext_[lower(word)] = std::string(type);
        ++added;
      }
    }
  }
  return added;
}

size_t MimeTypes::load_file(const char* path) {
  UniqueFd fd(::open(path, O_RDONLY | O_CLOEXEC));
  if (!fd) return 0;
  std::string text;
  char buf[16384];
  for (;;) {
    ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    text.append(buf, static_cast<size_t>(n));
    if (text.size() > (size_t{4} << 20)) return 0;  // not a mime.types file
  }
  return add_mime_types_text(text);
}

std::string_view MimeTypes::lookup(std::string_view file_name) const {
  size_t slash = file_name.rfind('/');
  if (slash != std::string_view::npos) file_name.remove_prefix(slash + 1);
  size_t dot = file_name.rfind('.');
  if (dot == std::string_view::npos || dot == 0 || dot + 1 == file_name.size()) return kDefault;
  auto it = by_ext_.find(lower(file_name.substr(dot + 1)));
  return it == by_ext_.end() ? kDefault : std::string_view(it->second);
}

}  // namespace aiowsgi::worker
