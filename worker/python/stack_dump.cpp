#include "worker/python/stack_dump.h"

#include "worker/python/py_ref.h"

namespace aiowsgi::worker::stack_dump {

namespace {

// Keeps the exception that was pending when a dump started, and puts it back at the end:
// a dump is a side remark and must not change what the caller is handling.
class KeptException {
 public:
  KeptException() noexcept { PyErr_Fetch(&type_, &value_, &tb_); }
  ~KeptException() {
    PyErr_Clear();
    PyErr_Restore(type_, value_, tb_);
  }
  KeptException(const KeptException&) = delete;
  KeptException& operator=(const KeptException&) = delete;
  KeptException(KeptException&&) = delete;
  KeptException& operator=(KeptException&&) = delete;

 private:
  PyObject* type_ = nullptr;
  PyObject* value_ = nullptr;
  PyObject* tb_ = nullptr;
};

std::string utf8_of(PyObject* s) {
  Py_ssize_t n = 0;
  const char* p = PyUnicode_AsUTF8AndSize(s, &n);
  if (p == nullptr) {
    PyErr_Clear();
    return {};
  }
  return std::string(p, static_cast<size_t>(n));
}

// What went wrong while formatting, as the dump's text.
std::string failure(const char* what) {
  PyObject *type, *value, *tb;
  PyErr_Fetch(&type, &value, &tb);
  PyRef t = PyRef::steal(type), v = PyRef::steal(value), b = PyRef::steal(tb);
  std::string text = std::string("(no stack: ") + what;
  if (v) {
    PyRef s = PyRef::steal(PyObject_Str(v.get()));
    if (s) text += ": " + utf8_of(s.get());
    PyErr_Clear();
  }
  return text + ")";
}

}  // namespace

std::string suspended_stack(PyObject* g) noexcept {
  if (g == nullptr) return {};
  KeptException kept;
  PyRef frame = PyRef::steal(PyObject_GetAttrString(g, "gr_frame"));
  if (!frame) return failure("gr_frame");
  if (frame.get() == Py_None) return {};  // not started, finished, or running now
  PyRef traceback = PyRef::steal(PyImport_ImportModule("traceback"));
  if (!traceback) return failure("import traceback");
  // format_stack reads the source lines through linecache: a disk read on the loop, paid
  // only when a stack is asked for.
  PyRef lines =
      PyRef::steal(PyObject_CallMethod(traceback.get(), "format_stack", "O", frame.get()));
  if (!lines) return failure("traceback.format_stack");
  PyRef empty = PyRef::steal(PyUnicode_FromString(""));
  PyRef text = empty ? PyRef::steal(PyUnicode_Join(empty.get(), lines.get())) : PyRef();
  if (!text) return failure("joining the frames");
  std::string out = utf8_of(text.get());
  while (!out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

bool install_fault_dump(int signo, int fd) noexcept {
  PyRef faulthandler = PyRef::steal(PyImport_ImportModule("faulthandler"));
  if (!faulthandler) return false;
  PyRef reg = PyRef::steal(PyObject_GetAttrString(faulthandler.get(), "register"));
  PyRef args = PyRef::steal(Py_BuildValue("(i)", signo));
  PyRef kwargs = PyRef::steal(
      Py_BuildValue("{s:i,s:O,s:O}", "file", fd, "all_threads", Py_False, "chain", Py_True));
  if (!reg || !args || !kwargs) return false;
  PyRef r = PyRef::steal(PyObject_Call(reg.get(), args.get(), kwargs.get()));
  return static_cast<bool>(r);
}

}  // namespace aiowsgi::worker::stack_dump
