// run_serve_benchmark: the event-loop runner (see serve_benchmark.h).
#include "bench/serve_benchmark.h"

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <nlohmann/json.hpp>

#include <cmath>
#include <deque>
#include <functional>
#include <memory>

#include "bench/arrival_schedule.h"
#include "bench/progress_bar.h"
#include "bench/serve_metrics.h"
#include "common/clock.h"
#include "net/http_client.h"
#include "net/sse.h"

namespace tandem::bench {

namespace asio = boost::asio;

namespace {

constexpr size_t kMaxErrorBody = 1000;
constexpr const char* kNoValidChunk =
    "Never received a valid chunk to calculate TTFT.This response will be marked as failed!";

void logf(std::FILE* log, const std::string& s) {
  if (!log) return;
  std::fputs(s.c_str(), log);
  std::fflush(log);
}

// One batch of requests (the warmup or the main run) driven on one io_context.
class BatchRunner {
 public:
  BatchRunner(const ServeBenchmarkOptions& o, const std::vector<SampleRequest>& requests,
              std::vector<double> arrivals, ProgressBar* bar)
      : o_(o),
        requests_(requests),
        arrivals_(std::move(arrivals)),
        bar_(bar),
        client_(io_, o.host, o.port,
                net::HttpClientOptions{.keep_alive = true, .max_idle_connections = 65536,
                                       .user_agent = "tandem-bench"}),
        dispatch_timer_(io_) {
    outputs_.resize(requests_.size());
    arrival_tp_.resize(requests_.size());
  }

  ServeBenchmarkRun run() {
    t0_ = Clock::now();
    if (!requests_.empty()) dispatch_due();
    io_.run();
    ServeBenchmarkRun r;
    r.duration_s = seconds_between(t0_, end_ == TimePoint{} ? Clock::now() : end_);
    r.outputs = std::move(outputs_);
    r.start = t0_;
    return r;
  }

 private:
  struct Stream {
    size_t index;
    TimePoint st;
    TimePoint most_recent;
    bool first = false;
    int http_status = 0;
    std::string reason;
    std::string error_body;
    std::string event_error;
    SseParser parser;
    std::shared_ptr<net::HttpCall> call;
  };

  void dispatch_due() {
    auto now = Clock::now();
    while (next_ < requests_.size() && t0_ + to_duration(arrivals_[next_]) <= now) arrive(next_++);
    if (next_ < requests_.size()) {
      dispatch_timer_.expires_at(t0_ + to_duration(arrivals_[next_]));
      dispatch_timer_.async_wait([this](const boost::system::error_code& ec) {
        if (!ec) dispatch_due();
      });
    }
  }

  static Clock::duration to_duration(double s) {
    return std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(s));
  }

  void arrive(size_t i) {
    arrival_tp_[i] = Clock::now();
    if (!o_.max_concurrency || in_flight_ < static_cast<size_t>(*o_.max_concurrency)) {
      start(i);
    } else {
      waiting_.push_back(i);
    }
  }

  void start(size_t i) {
    ++in_flight_;
    auto s = std::make_shared<Stream>();
    s->index = i;
    s->st = Clock::now();
    s->most_recent = s->st;
    RequestOutcome& out = outputs_[i];
    out.prompt_len = requests_[i].prompt_len;
    out.start_time = seconds_between(t0_, s->st);
    out.client_queue_time = seconds_between(arrival_tp_[i], s->st);

    net::HttpClientRequest req;
    req.method = "POST";
    req.target = o_.endpoint;
    req.body = build_request_body(o_, requests_[i]);
    req.headers.push_back({"Content-Type", "application/json"});
    if (!o_.api_key.empty()) req.headers.push_back({"Authorization", "Bearer " + o_.api_key});
    if (!requests_[i].request_id.empty()) req.headers.push_back({"x-request-id", requests_[i].request_id});
    req.connect_timeout = o_.connect_timeout;
    req.idle_timeout = o_.request_timeout;
    req.total_timeout = o_.request_timeout;

    Stream* raw = s.get();
    s->call = client_.request(
        std::move(req),
        {.on_head =
             [raw](const net::HttpResponseHead& h) {
               raw->http_status = h.status;
               raw->reason = h.reason;
             },
         .on_body = [this, raw](std::string_view piece) { on_body(*raw, piece); },
         .on_complete = [this, s](const Status& st) { on_complete(*s, st); }});
  }

  void on_body(Stream& s, std::string_view piece) {
    const TimePoint now = Clock::now();  // the arrival stamp for every event in this piece
    if (s.http_status != 200) {
      if (s.error_body.size() < kMaxErrorBody) s.error_body.append(piece.substr(0, kMaxErrorBody - s.error_body.size()));
      return;
    }
    if (!s.event_error.empty()) return;
    s.parser.feed(piece, [&](const SseEventView& e) {
      if (e.has_data) on_event(s, e.data, now);  // a block with only an event: line carries nothing
    });
    if (!s.event_error.empty() && s.call) s.call->cancel();
  }

  void on_event(Stream& s, std::string_view data, TimePoint now) {
    if (!s.event_error.empty() || data == "[DONE]") return;
    auto j = nlohmann::json::parse(data, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded() || !j.is_object()) {
      s.event_error = fmt::format("invalid JSON in stream event: {}", data.substr(0, 200));
      return;
    }
    RequestOutcome& out = outputs_[s.index];
    auto choices = j.find("choices");
    if (choices != j.end() && choices->is_array() && !choices->empty()) {
      if (!s.first) {
        s.first = true;
        out.ttft = seconds_between(s.st, now);
      } else {
        out.itl.push_back(seconds_between(s.most_recent, now));
      }
      s.most_recent = now;
      const auto& c0 = (*choices)[0];
      if (c0.is_object()) {
        if (o_.backend == "openai-chat") {
          auto d = c0.find("delta");
          if (d != c0.end() && d->is_object()) {
            auto content = d->find("content");
            if (content != d->end() && content->is_string()) out.generated_text += content->get_ref<const std::string&>();
          }
        } else {
          auto text = c0.find("text");
          if (text != c0.end() && text->is_string()) out.generated_text += text->get_ref<const std::string&>();
        }
      }
      return;
    }
    auto usage = j.find("usage");
    if (usage != j.end() && usage->is_object()) {
      auto ct = usage->find("completion_tokens");
      if (ct != usage->end() && ct->is_number_integer()) out.output_tokens = ct->get<int>();
      auto pt = usage->find("prompt_tokens");
      if (pt != usage->end() && pt->is_number_integer()) out.prompt_len = pt->get<int>();
    }
  }

  void on_complete(Stream& s, const Status& st) {
    RequestOutcome& out = outputs_[s.index];
    if (st.ok() && s.http_status == 200 && s.event_error.empty()) {
      s.parser.finish([&](const SseEventView& e) {
        if (e.has_data) on_event(s, e.data, Clock::now());
      });
    }
    if (!s.event_error.empty()) {
      out.error = s.event_error;
    } else if (!st.ok()) {
      out.error = st.to_string();
    } else if (s.http_status != 200) {
      out.error = fmt::format("HTTP {} {}", s.http_status, s.reason);
      if (!s.error_body.empty()) out.error += ": " + s.error_body;
    } else if (!s.first) {
      out.error = kNoValidChunk;
    } else {
      out.success = true;
    }
    out.latency = out.success ? seconds_between(s.st, s.most_recent) : 0.0;
    if (!out.success) out.generated_text.clear();
    s.call.reset();  // break the Stream <-> call cycle
    --in_flight_;
    ++completed_;
    if (bar_) bar_->update(1);
    if (!waiting_.empty()) {
      size_t next = waiting_.front();
      waiting_.pop_front();
      start(next);
    }
    if (completed_ == requests_.size()) end_ = Clock::now();
  }

  const ServeBenchmarkOptions& o_;
  const std::vector<SampleRequest>& requests_;
  std::vector<double> arrivals_;
  ProgressBar* bar_;
  asio::io_context io_;
  net::HttpClient client_;
  asio::steady_timer dispatch_timer_;
  std::vector<RequestOutcome> outputs_;
  std::vector<TimePoint> arrival_tp_;
  std::deque<size_t> waiting_;
  size_t next_ = 0;
  size_t in_flight_ = 0;
  size_t completed_ = 0;
  TimePoint t0_;
  TimePoint end_{};
};

}  // namespace

std::string build_request_body(const ServeBenchmarkOptions& o, const SampleRequest& r) {
  nlohmann::ordered_json j;
  j["model"] = o.model;
  if (o.backend == "openai-chat") {
    j["messages"] = nlohmann::ordered_json::array({{{"role", "user"}, {"content", r.prompt}}});
    j["max_completion_tokens"] = r.expected_output_len;
  } else {
    j["prompt"] = r.prompt;
    j["repetition_penalty"] = 1.0;
    j["max_tokens"] = r.expected_output_len;
    j["logprobs"] = o.logprobs ? nlohmann::ordered_json(*o.logprobs) : nlohmann::ordered_json(nullptr);
  }
  j["stream"] = true;
  j["stream_options"] = {{"include_usage", true}};
  if (o.ignore_eos) j["ignore_eos"] = true;
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

Result<ServeBenchmarkRun> run_serve_benchmark(const ServeBenchmarkOptions& o,
                                              const std::vector<SampleRequest>& requests, std::FILE* log) {
  if (o.backend != "openai" && o.backend != "openai-chat") {
    return InvalidArgumentError("--backend '{}': supported backends are openai and openai-chat", o.backend);
  }
  const std::string_view suffix = o.backend == "openai" ? "completions" : "chat/completions";
  if (o.endpoint.size() < suffix.size() || o.endpoint.compare(o.endpoint.size() - suffix.size(), suffix.size(), suffix) != 0) {
    return InvalidArgumentError("--endpoint '{}': the {} backend's URL must end with '{}'", o.endpoint, o.backend,
                                suffix);
  }
  if (o.max_concurrency && *o.max_concurrency <= 0) {
    return InvalidArgumentError("--max-concurrency must be greater than 0");
  }
  if (o.num_warmups < 0) return InvalidArgumentError("--num-warmups must be >= 0");
  if (requests.empty()) return InvalidArgumentError("the dataset has no requests");
  TANDEM_ASSIGN_OR_RETURN(std::vector<double> arrivals,
                          make_arrival_schedule(requests.size(), o.request_rate, o.burstiness, o.seed));

  if (o.num_warmups > 0) {
    logf(log, fmt::format("Warming up with {} requests...\n", o.num_warmups));
    std::vector<SampleRequest> warm(static_cast<size_t>(o.num_warmups), requests[0]);
    ProgressBar bar(warm.size(), stderr, o.progress_bar);  // tqdm draws on stderr
    BatchRunner(o, warm, std::vector<double>(warm.size(), 0.0), &bar).run();
    bar.close();
    logf(log, "Warmup run completed.\n");
  }
  logf(log, "Starting main benchmark run...\n");
  logf(log, fmt::format("Traffic request rate: {}\n", python_float_str(o.request_rate)));
  logf(log, fmt::format("Burstiness factor: {} ({})\n", python_float_str(o.burstiness),
                        o.burstiness == 1.0 ? "Poisson process" : "Gamma distribution"));
  logf(log, fmt::format("Maximum request concurrency: {}\n",
                        o.max_concurrency ? std::to_string(*o.max_concurrency) : std::string("None")));
  ProgressBar bar(requests.size(), stderr, o.progress_bar);
  ServeBenchmarkRun run = BatchRunner(o, requests, std::move(arrivals), &bar).run();
  bar.close();
  return run;
}

}  // namespace tandem::bench
