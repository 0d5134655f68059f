#include "common/posix_regex.h"

#include <string>

namespace aiowsgi {

void PosixRegex::Free::operator()(regex_t* re) const noexcept {
  regfree(re);
  delete re;
}

Result<PosixRegex> PosixRegex::compile(std::string_view pattern) {
  // glibc reads "\d" as a plain 'd' and would match the wrong paths without a word: a PCRE
  // pattern carried over from uWSGI is refused with what to write instead.
  for (size_t i = 0; i + 1 < pattern.size(); ++i) {
    if (pattern[i] != '\\') continue;
    char c = pattern[i + 1];
    if (c == 'd' || c == 'D') {
      return Status::Config(std::string("\\") + c + " is PCRE, not POSIX: write " +
                            (c == 'd' ? "[0-9]" : "[^0-9]"));
    }
    ++i;  // "\\d" is a backslash, then a 'd'
  }
  std::string text(pattern);  // regcomp wants a NUL-terminated string
  if (text.find('\0') != std::string::npos) return Status::Config("the pattern holds a NUL byte");
  auto re = std::unique_ptr<regex_t, Free>(new regex_t{});
  int rc = regcomp(re.get(), text.c_str(), REG_EXTENDED | REG_NOSUB);
  if (rc != 0) {
    char reason[256];
    regerror(rc, re.get(), reason, sizeof reason);
    delete re.release();  // regcomp frees what it allocated when it fails
    return Status::Config(std::string("invalid regular expression: ") + reason);
  }
  return PosixRegex(std::move(re));
}

bool PosixRegex::search(std::string_view text) const noexcept {
  // REG_STARTEND (glibc, BSD): the text is delimited by pmatch[0], not by a NUL.
  regmatch_t range[1];
  range[0].rm_so = 0;
  range[0].rm_eo = static_cast<regoff_t>(text.size());
  const char* data = text.empty() ? "" : text.data();
  return regexec(re_.get(), data, 1, range, REG_STARTEND) == 0;
}

}  // namespace aiowsgi
