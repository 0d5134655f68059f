// MimeTypes: the Content-Type of a static file from its name, read once per worker from
// Debian's /etc/mime.types (media-types package) when present, with a built-in table for the
// common web types otherwise and for names the file does not know. Workers only; no Python.
#pragma once

#include <string>
#include <string_view>
#include <unordered_map>

namespace aiowsgi::worker {

class MimeTypes {
 public:
  // The built-in table only.
  MimeTypes();
  // Adds the entries of a mime.types text ("type ext1 ext2 ..." lines, '#' comments); they
  // take precedence over the built-in ones. Returns the number of extensions read.
  size_t add_mime_types_text(std::string_view text);
  // add_mime_types_text with the file's contents; 0 when it cannot be read.
  size_t load_file(const char* path);

  // The type for |file_name| by its last extension (case-insensitive);
  // "application/octet-stream" when unknown.
  std::string_view lookup(std::string_view file_name) const;

 private:
  std::unordered_map<std::string, std::string> by_ext_;  // lower-case extension -> type
};

}  // namespace aiowsgi::worker
