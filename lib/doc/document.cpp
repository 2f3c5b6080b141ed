#include "doc/document.hpp"

#include <CLI/CLI.hpp>
#include <cstdio>
#include <ctime>
#include <exception>
#include <fmt/format.h>
#include <unistd.h>

namespace hp::doc {

std::string_view version() {
    return HOTPATCH_VERSION;
}

std::string now_rfc3339() {
    std::time_t t = std::time(nullptr);
    std::tm tm{};
    gmtime_r(&t, &tm);
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return buf;
}

Tool::Tool(std::string name) : short_(std::move(name)), tool_("hp-" + short_) {
    doc_["schema"] = "hotpatch." + short_ + "/1";
    doc_["tool"] = tool_;
    doc_["version"] = std::string(version());
    doc_["ok"] = true;
}

void Tool::warn(const std::string& msg) {
    std::fprintf(stderr, "%s: warning: %s\n", tool_.c_str(), msg.c_str());
    doc_["warnings"].push_back(msg);
}

void Tool::add_format_option(CLI::App& app) {
    app.add_option("--format", format_flag_,
                   "Output format: json, or text (default: text on a terminal, else json)")
        ->check(CLI::IsMember({"json", "text"}));
}

void Tool::fail(ErrorCode code, const std::string& message) {
    std::fprintf(stderr, "%s: error: %s\n", tool_.c_str(), message.c_str());
    doc_["ok"] = false;
    doc_["error"] = {{"code", std::string(code_name(code))}, {"message", message}};
}

int Tool::run(CLI::App& app, int argc, char** argv, const std::function<int()>& body,
              const std::function<std::string(const json&)>& text) {
    int status = 0;
    bool parsed = false, completed = false;
    try {
        app.parse(argc, argv);
        parsed = true;
    } catch (const CLI::Success& e) {
        return app.exit(e); // --help, --version: printed by CLI11, no document
    } catch (const CLI::ParseError& e) {
        fail(ErrorCode::Usage, e.what() + std::string(" (see --help)"));
        status = exit_status(ErrorCode::Usage);
    }
    if (parsed) {
        try {
            status = body();
            completed = true;
        } catch (const Error& e) {
            fail(e.code(), e.what());
            status = exit_status(e.code());
        } catch (const std::bad_alloc&) {
            fail(ErrorCode::Internal, "out of memory");
            status = exit_status(ErrorCode::Internal);
        } catch (const std::exception& e) {
            fail(ErrorCode::Internal, fmt::format("internal error: {}", e.what()));
            status = exit_status(ErrorCode::Internal);
        }
    }
    if (status != 0 && doc_.value("ok", true)) doc_["ok"] = false;

    Format fmt = isatty(STDOUT_FILENO) ? Format::Text : Format::Json;
    if (format_flag_ == "json") fmt = Format::Json;
    if (format_flag_ == "text") fmt = Format::Text;
    std::string out;
    if (fmt == Format::Json) {
        // Replace, not throw on, invalid UTF-8 (a path or name from hostile input).
        out = doc_.dump(2, ' ', false, json::error_handler_t::replace) + "\n";
    } else if (completed) {
        out = text(doc_);
    }
    if (!out.empty() && std::fwrite(out.data(), 1, out.size(), stdout) != out.size()) {
        std::fprintf(stderr, "%s: error: cannot write standard output\n", tool_.c_str());
        if (status == 0) status = exit_status(ErrorCode::Io);
    }
    if (std::fflush(stdout) != 0 && status == 0) status = exit_status(ErrorCode::Io);
    return status;
}

} // namespace hp::doc
