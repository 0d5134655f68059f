// IoResult: how a step of sending a response ended, for the steps whose failure used to be a
// bare `false` that meant "the client is gone" in one place and "a Python exception is set"
// in another. The caller knows from the value whether it must clear (or log) an exception.
// Workers only; no Python needed to use the type itself.
#pragma once

namespace aiowsgi::worker {

enum class [[nodiscard]] IoResult{
    kOk,           // done; the connection may serve another request (if the response allows)
    kClose,        // the connection must close (client gone, short body, the app's error
                   // already logged): no Python exception is set
    kPythonError,  // the connection must close and a Python exception is set (the request was
                   // cancelled while the app raised): the caller clears it
};

}  // namespace aiowsgi::worker
