// The JSON documents every tool prints (DESIGN §3): schema names, the common fields,
// the error object, text-or-JSON output, and the exit status. Implemented once, here.
#pragma once

#include "doc/error.hpp"

#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

namespace CLI {
class App;
}

namespace hp::doc {

using json = nlohmann::ordered_json;

std::string_view version();
// RFC 3339 UTC, second precision: "2026-11-24T07:12:03Z".
std::string now_rfc3339();

enum class Format { Json, Text };

// One run of one tool: owns the document, the warnings, the output format.
class Tool {
  public:
    // `name` is the short name: "pack" gives tool "hp-pack", schema "hotpatch.pack/1".
    explicit Tool(std::string name);

    json& doc() { return doc_; }
    const std::string& tool_name() const { return tool_; }

    // Prints "hp-NAME: warning: MSG" on stderr and records it in the document's "warnings".
    void warn(const std::string& msg);

    // Adds the common --format option to `app`.
    void add_format_option(CLI::App& app);

    // Parses the command line, calls `body` (which fills doc() and may throw hp::Error or
    // return a non-zero exit status for a clean "no"), prints the document — JSON when
    // stdout is not a terminal or --format json, else `text(doc)` — and returns the exit
    // status. Errors are printed on stderr as "hp-NAME: error: MSG" and put in the
    // document's "error" object with "ok": false.
    int run(CLI::App& app, int argc, char** argv, const std::function<int()>& body,
            const std::function<std::string(const json&)>& text);

  private:
    void fail(ErrorCode code, const std::string& message);

    std::string short_;
    std::string tool_;
    json doc_;
    std::string format_flag_;
};

} // namespace hp::doc
