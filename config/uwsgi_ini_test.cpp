#include "config/uwsgi_ini.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "config/keys.h"
#include "config/suggest.h"
#include "config/uwsgi_options.h"

namespace aiowsgi::config {
namespace {

// An in-memory world: files by absolute path, an environment, 4 CPUs, cwd /srv.
struct FakeWorld {
  std::map<std::string, std::string> files;
  std::map<std::string, std::string> env;
  std::set<std::string> existing;

  IniWorld world() const {
    IniWorld w;
    w.read = [this](const std::string& path, std::string* error) -> std::optional<std::string> {
      auto it = files.find(path);
      if (it == files.end()) {
        *error = "cannot read: No such file or directory";
        return std::nullopt;
      }
      return it->second;
    };
    w.getenv = [this](const std::string& name) -> std::optional<std::string> {
      auto it = env.find(name);
      return it == env.end() ? std::nullopt : std::optional<std::string>(it->second);
    };
    w.exists = [this](const std::string& path) { return existing.count(path) > 0; };
    w.cpu_count = 4;
    w.cwd = "/srv";
    return w;
  }
};

struct Read {
  std::vector<IniOption> options;
  std::vector<std::string> errors;
  // "name=value" per option, for compact expectations.
  std::vector<std::string> pairs() const {
    std::vector<std::string> out;
    for (const IniOption& o : options) out.push_back(o.name + "=" + o.value);
    return out;
  }
};

Read read(const FakeWorld& fw, const std::string& spec) {
  Read r;
  r.options = read_uwsgi_ini(spec, fw.world(), &r.errors);
  return r;
}

using Pairs = std::vector<std::string>;

TEST(UwsgiIni, SectionCommentsAndRepeatedKeys) {
  FakeWorld fw;
  fw.files["/srv/app/uwsgi.ini"] =
      "; a comment\n"
      "# another\n"
      "[other]\n"
      "processes = 9\n"
      "[uwsgi]\n"
      "  processes = 4  \n"
      "http-socket = :8000\n"
      "http-socket = :8001\r\n"
      "\n"
      "[more]\n"
      "processes = 7\n";
  Read r = read(fw, "app/uwsgi.ini");
  EXPECT_TRUE(r.errors.empty());
  EXPECT_EQ(r.pairs(), (Pairs{"processes=4", "http-socket=:8000", "http-socket=:8001"}));
  EXPECT_EQ(r.options[1].line, 7);
  EXPECT_FALSE(r.options[0].variable);
  EXPECT_EQ(r.options[1].file, "app/uwsgi.ini");
}

TEST(UwsgiIni, NamedSection) {
  FakeWorld fw;
  fw.files["/srv/u.ini"] = "[uwsgi]\nprocesses = 1\n[prod]\nprocesses = 8\n";
  EXPECT_EQ(read(fw, "u.ini:prod").pairs(), (Pairs{"processes=8"}));
}

TEST(UwsgiIni, ReferencesEnvAndMagic) {
  FakeWorld fw;
  fw.env["PORT"] = "9000";
  fw.files["/etc/uwsgi/mysite.ini"] =
      "[uwsgi]\n"
      "base = /srv/%n\n"
      "chdir = %(base)\n"
      "http = :$(PORT)\n"
      "missing = [$(NOPE)]\n"
      "magic = %d|%p|%s|%e|%c|%x|%k|100%%\n"
      "unknown = %z\n";
  Read r = read(fw, "/etc/uwsgi/mysite.ini");
  EXPECT_TRUE(r.errors.empty());
  EXPECT_EQ(r.pairs(),
            (Pairs{"base=/srv/mysite", "chdir=/srv/mysite", "http=:9000", "missing=[]",
                   "magic=/etc/uwsgi/|/etc/uwsgi/mysite.ini|mysite.ini|ini|uwsgi|mysite.ini:uwsgi|"
                   "4|100%",
                   "unknown=%z"}));
  EXPECT_TRUE(r.options[0].variable);   // base, used by %(base)
  EXPECT_FALSE(r.options[1].variable);  // chdir
}

TEST(UwsgiIni, UnknownReferenceIsAnError) {
  FakeWorld fw;
  fw.files["/srv/u.ini"] = "[uwsgi]\nchdir = %(base)/x\n";
  Read r = read(fw, "u.ini");
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_EQ(r.errors[0],
            "u.ini:2: %(base): unknown reference (no option 'base' is set before this line)");
}

TEST(UwsgiIni, IfBlocks) {
  FakeWorld fw;
  fw.env["DEBUG"] = "1";
  fw.env["EMPTY"] = "";
  fw.existing.insert("/srv/local.py");
  fw.files["/srv/u.ini"] =
      "[uwsgi]\n"
      "if-env = DEBUG\n"
      "py-autoreload = %(_)\n"
      "if-not-env = DEBUG\n"
      "nested = no\n"
      "endif =\n"
      "endif =\n"
      "if-env = EMPTY\n"
      "empty = yes\n"
      "endif =\n"
      "if-not-env = PROD\n"
      "notprod = yes\n"
      "endif =\n"
      "if-exists = local.py\n"
      "exists = %(_)\n"
      "endif =\n"
      "if-exists = /nope\n"
      "nope = yes\n"
      "endif =\n";
  Read r = read(fw, "u.ini");
  EXPECT_TRUE(r.errors.empty()) << r.errors[0];
  EXPECT_EQ(r.pairs(), (Pairs{"py-autoreload=1", "notprod=yes", "exists=local.py"}));
}

TEST(UwsgiIni, UnbalancedIfBlocks) {
  FakeWorld fw;
  fw.files["/srv/u.ini"] = "[uwsgi]\nendif =\nif-env = X\n";
  Read r = read(fw, "u.ini");
  EXPECT_EQ(r.errors, (Pairs{"u.ini:2: endif: no if-block is open",
                             "u.ini:3: if-block not closed (missing "
                             "endif)"}));
}

TEST(UwsgiIni, IncludesResolveAgainstTheIncludingFile) {
  FakeWorld fw;
  fw.files["/srv/conf/u.ini"] = "[uwsgi]\nini = base.ini\nprocesses = 4\nini = extra.ini:prod\n";
  fw.files["/srv/conf/base.ini"] = "[uwsgi]\nprocesses = 2\nbase = %d\n";
  fw.files["/srv/conf/extra.ini"] = "[uwsgi]\nx = 1\n[prod]\nharakiri = 30\n";
  Read r = read(fw, "conf/u.ini");
  EXPECT_TRUE(r.errors.empty());
  EXPECT_EQ(r.pairs(), (Pairs{"processes=2", "base=/srv/conf/", "processes=4", "harakiri=30"}));
  EXPECT_EQ(r.options[0].file, "base.ini");
  EXPECT_EQ(r.options[0].line, 2);
}

TEST(UwsgiIni, IncludeLoopEndsWithAnError) {
  FakeWorld fw;
  fw.files["/srv/u.ini"] = "[uwsgi]\nini = u.ini\n";
  Read r = read(fw, "u.ini");
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_NE(r.errors[0].find("includes nest more than 16 deep"), std::string::npos);
}

TEST(UwsgiIni, MissingFileAndBadLines) {
  FakeWorld fw;
  EXPECT_EQ(read(fw, "none.ini").errors,
            (Pairs{"none.ini: cannot read: No such file or directory"}));
  fw.files["/srv/u.ini"] = "[uwsgi\n[uwsgi]\nmaster\n";
  EXPECT_EQ(read(fw, "u.ini").errors, (Pairs{"u.ini:1: [uwsgi: expected [section]",
                                             "u.ini:3: master: expected name = value"}));
}

TEST(UwsgiIni, SplitSpec) {
  std::string f, s;
  split_ini_spec("a.ini:prod", &f, &s);
  EXPECT_EQ(f + "|" + s, "a.ini|prod");
  split_ini_spec("a.ini", &f, &s);
  EXPECT_EQ(f + "|" + s, "a.ini|uwsgi");
  split_ini_spec("/weird:dir/a.ini", &f, &s);
  EXPECT_EQ(f + "|" + s, "/weird:dir/a.ini|uwsgi");
}

// --- what the options mean -------------------------------------------------------------------

UwsgiTranslation translate(const Pairs& pairs) {
  std::vector<IniOption> options;
  int line = 1;
  for (const std::string& p : pairs) {
    size_t eq = p.find('=');
    options.push_back({p.substr(0, eq), p.substr(eq + 1), "u.ini", ++line});
  }
  return translate_uwsgi_options(options);
}

// "[table] key = value" per setting.
Pairs settings(const UwsgiTranslation& t) {
  Pairs out;
  for (const auto& s : t.settings) {
    out.push_back("[" + std::string(s.key->table) + "] " + std::string(s.key->name) + " = " +
                  s.value);
  }
  return out;
}

TEST(UwsgiOptions, MappedThroughTheKeyTable) {
  UwsgiTranslation t =
      translate({"http=:80",          "http-socket=:81",   "socket=/run/a.sock",
                 "uwsgi-socket=:82",  "processes=4",       "workers=3",
                 "async=50",          "asyncio=60",        "module=mysite.wsgi:application",
                 "callable=app",      "pythonpath=/srv",   "env=A=1",
                 "uid=www-data",      "gid=www-data",      "pidfile=/run/a.pid",
                 "stats=:9191",       "listen=128",        "harakiri=30",
                 "max-requests=1000", "reload-on-rss=256", "buffer-size=32768",
                 "socket-timeout=7",  "http-timeout=8",    "logto=/var/log/a.log"});
  EXPECT_TRUE(t.errors.empty()) << t.errors[0];
  EXPECT_TRUE(t.notes.empty());
  EXPECT_EQ(settings(t), (Pairs{"[server] listen = :80",
                                "[server] listen = :81",
                                "[server] uwsgi_listen = unix:/run/a.sock",
                                "[server] uwsgi_listen = :82",
                                "[server] workers = 4",
                                "[server] workers = 3",
                                "[server] cores = 50",
                                "[server] cores = 60",
                                "[app] module = mysite.wsgi:application",
                                "[app] callable = app",
                                "[app] python_path = /srv",
                                "[app] env = A=1",
                                "[server] user = www-data",
                                "[server] group = www-data",
                                "[server] pidfile = /run/a.pid",
                                "[stats] listen = :9191",
                                "[server] backlog = 128",
                                "[limits] harakiri = 30",
                                "[limits] max_requests = 1000",
                                "[limits] reload_on_rss_mb = 256",
                                "[limits] max_header_bytes = 32768",
                                "[limits] header_timeout = 7",
                                "[limits] header_timeout = 8",
                                "[log] file = /var/log/a.log"}));
  EXPECT_EQ(t.settings[0].origin, "u.ini:2: http = :80");
}

TEST(UwsgiOptions, Translated) {
  UwsgiTranslation t =
      translate({"chdir=/srv/app", "wsgi-file=app.py", "py-autoreload=2", "py-autoreload=0",
                 "lazy-apps=true", "lazy-apps=0", "disable-logging=1", "static-map=/static=/srv/st",
                 "static-map=/media/=/srv/m", "touch-reload=/srv/reload",
                 "chmod-socket=", "chmod-socket=660"});
  EXPECT_TRUE(t.errors.empty()) << t.errors[0];
  EXPECT_EQ(settings(t),
            (Pairs{"[app] chdir = /srv/app", "[app] wsgi_file = /srv/app/app.py",
                   "[app] reload = true", "[app] reload = false", "[server] preload = false",
                   "[server] preload = true", "[log] access = false",
                   "[static] map = /static/=/srv/st", "[static] map = /media/=/srv/m",
                   "[app] reload = true", "[app] reload_extra = /srv/reload",
                   "[server] socket_mode = 666", "[server] socket_mode = 660"}));
  ASSERT_EQ(t.notes.size(), 1u);
  EXPECT_EQ(t.notes[0].rfind("u.ini:11: touch-reload: ", 0), 0u) << t.notes[0];
}

// uWSGI's static-expires family: the request-time ones map onto [static] expires_*, the ones
// counted from the file's mtime and the PATH_INFO ones are refused with what to use.
TEST(UwsgiOptions, StaticExpires) {
  UwsgiTranslation t =
      translate({"static-expires=/srv/st/.*\\.css 3600", "static-expires-uri=^/static/.*\\.js$ 600",
                 "static-expires-type=image/png 60"});
  EXPECT_TRUE(t.errors.empty()) << t.errors[0];
  EXPECT_EQ(settings(t), (Pairs{"[static] expires_file = /srv/st/.*\\.css 3600",
                                "[static] expires_uri = ^/static/.*\\.js$ 600",
                                "[static] expires_type = image/png 60"}));
  EXPECT_EQ(t.settings[0].origin, "u.ini:2: static-expires = /srv/st/.*\\.css 3600");
  t = translate({"static-expires-mtime=x 1", "static-expires-uri-mtime=x 1",
                 "static-expires-type-mtime=text/css 1", "static-expires-path-info=x 1",
                 "static-expires-path-info-mtime=x 1"});
  ASSERT_EQ(t.errors.size(), 5u);
  EXPECT_EQ(t.errors[0],
            "u.ini:2: static-expires-mtime: expiry counted from the file's modification time is "
            "not supported (static-expires, static-expires-uri or static-expires-type, counted "
            "from the request)");
  EXPECT_EQ(t.errors[3].rfind("u.ini:5: static-expires-path-info: there is no expiry by", 0), 0u)
      << t.errors[3];
  for (const char* name : {"static-expires", "static-expires-uri", "static-expires-type"}) {
    EXPECT_EQ(uwsgi_option_arity(name), UwsgiArity::kValue) << name;
    auto mapped = mapped_uwsgi_options();
    EXPECT_NE(std::find(mapped.begin(), mapped.end(), name), mapped.end()) << name;
  }
}

// uWSGI's https and https-socket: ADDR,CERT,KEY[,CIPHERS[,!CA]] onto an https:// listener and
// [tls]; the cipher list is noted, an optional client CA and a second certificate refused.
TEST(UwsgiOptions, HttpsMapsToAnHttpsListenerAndTls) {
  UwsgiTranslation t = translate({"https=:8443,/etc/s.pem,/etc/s.key,HIGH,!/etc/ca.pem",
                                  "https-socket=127.0.0.1:9443,/etc/s.pem,/etc/s.key"});
  EXPECT_TRUE(t.errors.empty()) << t.errors[0];
  EXPECT_EQ(settings(t), (Pairs{"[server] listen = https://:8443", "[tls] certificate = /etc/s.pem",
                                "[tls] key = /etc/s.key", "[tls] ca = /etc/ca.pem",
                                "[server] listen = https://127.0.0.1:9443",
                                "[tls] certificate = /etc/s.pem", "[tls] key = /etc/s.key"}));
  ASSERT_EQ(t.notes.size(), 1u);
  EXPECT_NE(t.notes[0].find("its cipher list HIGH is not used"), std::string::npos) << t.notes[0];
  t = translate({"https=:8443,a.pem", "https=:8443,a.pem,a.key,,/etc/ca.pem",
                 "https=:8443,a.pem,a.key", "https=:9443,b.pem,b.key", "https2=addr=:1"});
  ASSERT_EQ(t.errors.size(), 4u);
  EXPECT_EQ(t.errors[0],
            "u.ini:2: https: expected ADDR,CERT,KEY[,CIPHERS[,!CA]], got ':8443,a.pem'");
  EXPECT_NE(t.errors[1].find("write !/etc/ca.pem to require them"), std::string::npos)
      << t.errors[1];
  EXPECT_NE(t.errors[2].find("every https listener serves the same certificate"), std::string::npos)
      << t.errors[2];
  EXPECT_EQ(t.errors[3].rfind("u.ini:6: https2: only https and https-socket", 0), 0u)
      << t.errors[3];
  EXPECT_EQ(uwsgi_option_arity("https"), UwsgiArity::kValue);
}

TEST(UwsgiOptions, EverySpellingOfAVirtualenvMapsToTheKey) {
  UwsgiTranslation t = translate({"virtualenv=/srv/a", "venv=/srv/b", "home=/srv/c"});
  EXPECT_TRUE(t.errors.empty()) << t.errors[0];
  EXPECT_EQ(settings(t), (Pairs{"[app] virtualenv = /srv/a", "[app] virtualenv = /srv/b",
                                "[app] virtualenv = /srv/c"}));
}

// post-buffering was noted (bodies were always read as the app asked); it now sets the key.
TEST(UwsgiOptions, PostBufferingSetsBufferBodyBytes) {
  UwsgiTranslation t = translate({"post-buffering=65536"});
  EXPECT_TRUE(t.errors.empty()) << t.errors[0];
  EXPECT_TRUE(t.notes.empty());
  EXPECT_EQ(settings(t), (Pairs{"[limits] buffer_body_bytes = 65536"}));
}

TEST(UwsgiOptions, NotedOncePerOption) {
  UwsgiTranslation t = translate({"master=true", "enable-threads=", "threads=4", "master=1",
                                  "procname-prefix-spaced=app", "vacuum=true"});
  EXPECT_TRUE(t.errors.empty());
  EXPECT_TRUE(t.settings.empty());
  ASSERT_EQ(t.notes.size(), 5u);
  EXPECT_EQ(t.notes[0], "u.ini:2: master: no effect here: there is always a master process");
  EXPECT_EQ(t.notes[2].rfind("u.ini:4: threads: no effect here: cores do this job", 0), 0u);
}

TEST(UwsgiOptions, RefusedAllAtOnce) {
  UwsgiTranslation t =
      translate({"daemonize=/var/log/u.log", "route-uri=^/x break:403", "cache2=name=c,items=10",
                 "https2=addr=:443,cert=a.crt,key=a.key", "attach-daemon=celery"});
  ASSERT_EQ(t.errors.size(), 5u);
  EXPECT_EQ(t.errors[0],
            "u.ini:2: daemonize: aiowsgi does not fork into the background (run it under systemd "
            "or another supervisor, [log] file for the log)");
  EXPECT_EQ(t.errors[1].rfind("u.ini:3: route-uri: there is no internal routing (", 0), 0u);
}

TEST(UwsgiOptions, UnknownOptionNamesTheClosest) {
  UwsgiTranslation t = translate({"proceses=4", "zzzzzzzz=1", "enable-thread=1"});
  EXPECT_EQ(t.errors, (Pairs{"u.ini:2: proceses: unknown option (did you mean processes?)",
                             "u.ini:3: zzzzzzzz: unknown option",
                             "u.ini:4: enable-thread: unknown option (did you mean "
                             "enable-threads?)"}));
}

TEST(UwsgiOptions, VariablesOfTheFileAreNoOptions) {
  std::vector<IniOption> options = {{"project", "mysite", "u.ini", 2, true},
                                    {"projct", "mysite", "u.ini", 3, false}};
  UwsgiTranslation t = translate_uwsgi_options(options);
  EXPECT_TRUE(t.settings.empty());
  EXPECT_EQ(t.errors, (Pairs{"u.ini:3: projct: unknown option"}));
}

TEST(UwsgiOptions, BadBoolean) {
  UwsgiTranslation t = translate({"lazy-apps=maybe"});
  EXPECT_EQ(t.errors, (Pairs{"u.ini:2: lazy-apps: expected true, false, 1 or 0, got 'maybe'"}));
}

TEST(Suggest, ClosestName) {
  constexpr std::string_view kNames[] = {"workers", "cores", "backlog", "listen"};
  EXPECT_EQ(closest_name("workrs", kNames), "workers");
  EXPECT_EQ(closest_name("wokrers", kNames), "workers");
  EXPECT_EQ(closest_name("Cores", kNames), "cores");
  EXPECT_EQ(closest_name("xyz", kNames), "");
  EXPECT_EQ(did_you_mean("lisen", kNames), " (did you mean listen?)");
}

}  // namespace
}  // namespace aiowsgi::config
