// refgen: drive llama.cpp's own libllama to produce reference data for srl.
//
// Built and driven by scripts/reference/gen_reference.py; not meant to be
// used by hand, but it can be:
//
//   refgen info     MODEL
//   refgen pieces   MODEL            < "id id id ..."
//   refgen tokenize MODEL            < cases     (one case a line: "<add_special 0|1> <parse_special 0|1> <hex text>")
//   refgen greedy   MODEL N_NEW FA LOGITS_OUT [LORA] < prompts   (one a line: "<add_special> <parse_special> <hex text>")
//
// LORA (optional): a llama.cpp GGUF LoRA adapter, loaded once with
// llama_adapter_lora_init and set on every prompt's context with
// llama_set_adapters_lora at scale 1.0 (llama.cpp's default --lora scale).
//
// FA is auto|on|off (llama_flash_attn_type).  n_ctx/threads come from the
// environment: REF_N_CTX (default 2048), REF_THREADS (default 2).
// Everything else is llama_context_default_params().
//
// Output is line oriented, plain ASCII, parsed by gen_reference.py:
//   tokenize: one line per case:  "<id>:<hex piece> <id>:<hex piece> ..."
//   greedy:   with LORA, once: "lora_scale <s>", "lora_meta <hex key> <hex value>"
//             per adapter GGUF key, "lora_log <text>" per adapter load log line;
//             "ctx_params {json}" once per prompt context, "log <text>" for
//             interesting llama.cpp log lines, then per prompt
//             "top5 <step> <id>:<logit> x5" for every generated position, then
//             "prompt <ids...>", "gen <ids...>", "first_eog <idx|-1>",
//             "logits_offset <float index>"; full-vocab logits of the first
//             generated position are appended to LOGITS_OUT as f32 LE.
#include "llama.h"
#include "ggml.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>
#include <algorithm>
#include <iostream>

static bool g_echo_log = false;
static std::vector<std::string> g_log_lines;

static bool g_loading = false;
static std::vector<std::string> g_model_log;

static bool g_loading_lora = false;
static std::vector<std::string> g_lora_log;

static void log_cb(enum ggml_log_level level, const char * text, void * /*user*/) {
    std::string s(text);
    if (g_loading_lora) {
        // adapter load: keep every line (tensor count, buffer type and size)
        while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) s.pop_back();
        if (!s.empty()) g_lora_log.push_back(s);
        if (g_echo_log || level == GGML_LOG_LEVEL_WARN || level == GGML_LOG_LEVEL_ERROR) fputs(text, stderr);
        return;
    }
    if (g_loading) {
        // model load: keep tensor type counts and buffer types (weight repacking shows up here)
        if (s.find("- type ") != std::string::npos || s.find("buffer size") != std::string::npos ||
            s.find("REPACK") != std::string::npos || s.find("file type") != std::string::npos ||
            s.find("load_mode") != std::string::npos) {
            while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) s.pop_back();
            g_model_log.push_back(s);
        }
        if (g_echo_log || level == GGML_LOG_LEVEL_WARN || level == GGML_LOG_LEVEL_ERROR) fputs(text, stderr);
        return;
    }
    // keep lines that document the numerics-relevant context decisions
    if (s.find("llama_context:") != std::string::npos || s.find("llama_kv_cache: size") != std::string::npos ||
        s.find("Flash Attention") != std::string::npos || s.find("flash_attn") != std::string::npos) {
        while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) s.pop_back();
        if (!s.empty()) g_log_lines.push_back(s);
    }
    if (g_echo_log || level == GGML_LOG_LEVEL_WARN || level == GGML_LOG_LEVEL_ERROR) fputs(text, stderr);
}

static void flush_log(FILE * out) {
    for (auto & l : g_log_lines) fprintf(out, "log %s\n", l.c_str());
    g_log_lines.clear();
}

static std::string hex(const char * p, size_t n) {
    static const char * d = "0123456789abcdef";
    std::string s;
    s.reserve(2 * n);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        s.push_back(d[c >> 4]);
        s.push_back(d[c & 15]);
    }
    return s;
}

static std::string unhex(const std::string & h) {
    std::string s;
    for (size_t i = 0; i + 1 < h.size(); i += 2) s.push_back((char)std::stoi(h.substr(i, 2), nullptr, 16));
    return s;
}

static std::vector<llama_token> tokenize(const llama_vocab * vocab, const std::string & text, bool add_special, bool parse_special) {
    int n = llama_tokenize(vocab, text.data(), (int32_t)text.size(), nullptr, 0, add_special, parse_special);
    if (n < 0) n = -n;
    std::vector<llama_token> toks(n);
    int m = llama_tokenize(vocab, text.data(), (int32_t)text.size(), toks.data(), n, add_special, parse_special);
    if (m < 0) { fprintf(stderr, "tokenize failed\n"); exit(1); }
    toks.resize(m);
    return toks;
}

static std::string piece(const llama_vocab * vocab, llama_token t) {
    std::vector<char> buf(256);
    int n = llama_token_to_piece(vocab, t, buf.data(), (int32_t)buf.size(), 0, /*special=*/true);
    if (n < 0) {
        buf.resize(-n);
        n = llama_token_to_piece(vocab, t, buf.data(), (int32_t)buf.size(), 0, true);
    }
    return std::string(buf.data(), n);
}

static bool parse_case(const std::string & line, bool & a, bool & p, std::string & text) {
    if (line.size() < 4) return false;
    a = line[0] == '1';
    p = line[2] == '1';
    text = unhex(line.substr(4));
    return true;
}

static const char * fa_name(llama_flash_attn_type t) { return llama_flash_attn_type_name(t); }

int main(int argc, char ** argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: refgen info|tokenize|greedy MODEL ...\n");
        return 2;
    }
    std::string cmd = argv[1];
    std::string model_path = argv[2];
    g_echo_log = getenv("REF_VERBOSE") != nullptr;
    llama_log_set(log_cb, nullptr);
    llama_backend_init();

    llama_model_params mp = llama_model_default_params();
    mp.n_gpu_layers = 0;
    // REF_NO_REPACK: no CPU_REPACK buffers (weights run in their file layout)
    if (getenv("REF_NO_REPACK")) mp.use_extra_bufts = false;
    g_loading = true;
    llama_model * model = llama_model_load_from_file(model_path.c_str(), mp);
    g_loading = false;
    if (!model) { fprintf(stderr, "failed to load %s\n", model_path.c_str()); return 1; }
    const llama_vocab * vocab = llama_model_get_vocab(model);
    g_log_lines.clear();

    if (cmd == "info") {
        printf("n_vocab %d\n", llama_vocab_n_tokens(vocab));
        printf("add_bos %d\n", (int)llama_vocab_get_add_bos(vocab));
        printf("add_eos %d\n", (int)llama_vocab_get_add_eos(vocab));
        printf("bos %d\neos %d\neot %d\n", llama_vocab_bos(vocab), llama_vocab_eos(vocab), llama_vocab_eot(vocab));
        printf("eog");
        for (int i = 0; i < llama_vocab_n_tokens(vocab); i++) if (llama_vocab_is_eog(vocab, i)) printf(" %d", i);
        printf("\n");
        printf("system_info %s\n", llama_print_system_info());
        char buf[256];
        llama_model_desc(model, buf, sizeof(buf));
        printf("desc %s\n", buf);
        printf("model_params {\"n_gpu_layers\": %d, \"use_extra_bufts\": %s, \"load_mode\": %d}\n",
               mp.n_gpu_layers, mp.use_extra_bufts ? "true" : "false", (int)mp.load_mode);
        for (auto & l : g_model_log) printf("modellog %s\n", l.c_str());
        const char * tmpl = llama_model_chat_template(model, nullptr);
        if (tmpl) printf("chat_template %s\n", hex(tmpl, strlen(tmpl)).c_str());
        for (llama_token t : {llama_vocab_bos(vocab), llama_vocab_eos(vocab)}) {
            std::string pc = t >= 0 ? piece(vocab, t) : std::string();
            printf("piece %d %s\n", t, hex(pc.data(), pc.size()).c_str());
        }
    } else if (cmd == "tokenize") {
        std::string line;
        while (std::getline(std::cin, line)) {
            bool a, p;
            std::string text;
            if (!parse_case(line, a, p, text)) { fprintf(stderr, "bad line\n"); return 1; }
            auto toks = tokenize(vocab, text, a, p);
            std::string out;
            for (size_t i = 0; i < toks.size(); i++) {
                std::string pc = piece(vocab, toks[i]);
                if (i) out.push_back(' ');
                out += std::to_string(toks[i]) + ":" + hex(pc.data(), pc.size());
            }
            printf("%s\n", out.c_str());
        }
    } else if (cmd == "pieces") {
        // stdin: one line of space separated ids -> "<id>:<hex piece> ..."
        std::string line;
        while (std::getline(std::cin, line)) {
            std::string out, tok;
            size_t i = 0;
            while (i <= line.size()) {
                if (i == line.size() || line[i] == ' ') {
                    if (!tok.empty()) {
                        llama_token t = std::stoi(tok);
                        std::string pc = piece(vocab, t);
                        if (!out.empty()) out.push_back(' ');
                        out += tok + ":" + hex(pc.data(), pc.size());
                        tok.clear();
                    }
                } else {
                    tok.push_back(line[i]);
                }
                i++;
            }
            printf("%s\n", out.c_str());
        }
    } else if (cmd == "greedy") {
        if (argc < 6) { fprintf(stderr, "usage: refgen greedy MODEL N_NEW auto|on|off LOGITS_OUT [LORA]\n"); return 2; }
        int n_new = atoi(argv[3]);
        std::string fa = argv[4];
        FILE * lf = fopen(argv[5], "wb");
        if (!lf) { perror("logits out"); return 1; }
        llama_adapter_lora * lora = nullptr;
        float lora_scale = 1.0f;
        if (argc > 6) {
            g_loading_lora = true;
            lora = llama_adapter_lora_init(model, argv[6]);
            g_loading_lora = false;
            if (!lora) { fprintf(stderr, "failed to load LoRA adapter %s\n", argv[6]); return 1; }
            printf("lora_scale %g\n", lora_scale);
            // the adapter's GGUF metadata as llama.cpp read it, and its load log
            char key[256], val[256];
            for (int32_t i = 0; i < llama_adapter_meta_count(lora); i++) {
                if (llama_adapter_meta_key_by_index(lora, i, key, sizeof(key)) < 0) continue;
                if (llama_adapter_meta_val_str_by_index(lora, i, val, sizeof(val)) < 0) continue;
                printf("lora_meta %s %s\n", hex(key, strlen(key)).c_str(), hex(val, strlen(val)).c_str());
            }
            for (auto & l : g_lora_log) printf("lora_log %s\n", l.c_str());
        }
        const int n_ctx = getenv("REF_N_CTX") ? atoi(getenv("REF_N_CTX")) : 2048;
        const int n_thr = getenv("REF_THREADS") ? atoi(getenv("REF_THREADS")) : 2;
        const int n_vocab = llama_vocab_n_tokens(vocab);
        long long offset = 0;
        std::string line;
        while (std::getline(std::cin, line)) {
            bool a, p;
            std::string text;
            if (!parse_case(line, a, p, text)) { fprintf(stderr, "bad line\n"); return 1; }
            auto toks = tokenize(vocab, text, a, p);

            llama_context_params cp = llama_context_default_params();
            cp.n_ctx = n_ctx;
            cp.n_threads = n_thr;
            cp.n_threads_batch = n_thr;
            if (fa == "on") cp.flash_attn_type = LLAMA_FLASH_ATTN_TYPE_ENABLED;
            else if (fa == "off") cp.flash_attn_type = LLAMA_FLASH_ATTN_TYPE_DISABLED;
            else cp.flash_attn_type = LLAMA_FLASH_ATTN_TYPE_AUTO;
            g_log_lines.clear();
            llama_context * ctx = llama_init_from_model(model, cp);
            if (!ctx) { fprintf(stderr, "failed to create context\n"); return 1; }
            if (lora && llama_set_adapters_lora(ctx, &lora, 1, &lora_scale) != 0) {
                fprintf(stderr, "llama_set_adapters_lora failed\n");
                return 1;
            }
            printf("ctx_params {\"n_ctx\": %u, \"n_ctx_requested\": %u, \"n_batch\": %u, \"n_ubatch\": %u, \"n_seq_max\": %u, "
                   "\"n_threads\": %d, \"n_threads_batch\": %d, \"flash_attn_type_requested\": \"%s\", "
                   "\"type_k\": \"%s\", \"type_v\": \"%s\", \"offload_kqv\": %s, \"op_offload\": %s, \"swa_full\": %s, "
                   "\"kv_unified\": %s, \"embeddings\": %s, \"rope_freq_base\": %g, \"rope_freq_scale\": %g, "
                   "\"yarn_ext_factor\": %g}\n",
                   llama_n_ctx(ctx), cp.n_ctx, llama_n_batch(ctx), llama_n_ubatch(ctx), llama_n_seq_max(ctx),
                   llama_n_threads(ctx), llama_n_threads_batch(ctx), fa_name(cp.flash_attn_type),
                   ggml_type_name(cp.type_k), ggml_type_name(cp.type_v),
                   cp.offload_kqv ? "true" : "false", cp.op_offload ? "true" : "false", cp.swa_full ? "true" : "false",
                   cp.kv_unified ? "true" : "false", cp.embeddings ? "true" : "false",
                   cp.rope_freq_base, cp.rope_freq_scale, cp.yarn_ext_factor);

            // whole prompt in one llama_decode batch; only the last position's logits are requested
            llama_batch b = llama_batch_get_one(toks.data(), (int32_t)toks.size());
            if (llama_decode(ctx, b) != 0) { fprintf(stderr, "decode (prompt) failed\n"); return 1; }
            flush_log(stdout); // FA auto is resolved lazily; the log says what it became

            std::vector<llama_token> gen;
            int first_eog = -1;
            for (int i = 0; i < n_new; i++) {
                const float * lg = llama_get_logits_ith(ctx, -1);
                if (i == 0) {
                    fwrite(lg, sizeof(float), n_vocab, lf);
                }
                llama_token best = 0;
                for (int t = 1; t < n_vocab; t++) if (lg[t] > lg[best]) best = t; // argmax, lowest id on ties
                gen.push_back(best);
                // the step's 5 largest logits (ties: lowest id first), %.9g round-trips an f32
                std::vector<int> top(n_vocab);
                for (int t = 0; t < n_vocab; t++) top[t] = t;
                std::partial_sort(top.begin(), top.begin() + 5, top.end(),
                                  [&](int x, int y) { return lg[x] > lg[y] || (lg[x] == lg[y] && x < y); });
                printf("top5 %d", i);
                for (int k = 0; k < 5; k++) printf(" %d:%.9g", top[k], lg[top[k]]);
                printf("\n");
                if (first_eog < 0 && llama_vocab_is_eog(vocab, best)) first_eog = i;
                if (i + 1 == n_new) break;
                llama_batch nb = llama_batch_get_one(&gen.back(), 1);
                if (llama_decode(ctx, nb) != 0) { fprintf(stderr, "decode failed at %d\n", i); return 1; }
            }
            printf("prompt");
            for (auto t : toks) printf(" %d", t);
            printf("\ngen");
            for (auto t : gen) printf(" %d", t);
            printf("\nfirst_eog %d\nlogits_offset %lld\n", first_eog, offset);
            offset += n_vocab;
            flush_log(stdout);
            llama_free(ctx);
            fflush(stdout);
        }
        fclose(lf);
        if (lora) llama_adapter_lora_free(lora);
    } else {
        fprintf(stderr, "unknown command %s\n", cmd.c_str());
        return 2;
    }
    llama_model_free(model);
    llama_backend_free();
    return 0;
}
