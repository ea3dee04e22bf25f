// FAISS peer for `lq bench aqlm --mode mse`: ResidualQuantizer (beam search)
// and LocalSearchQuantizer (ICM) on the same 8-dimensional data, M = 2,
// B = 8, written by `lq bench aqlm --mode mse --export DIR`
// (train_<kind>.f32, test_<kind>.f32, codebooks_<kind>.f32 = lq's trained
// codebooks). Built and run only by faiss_aq.sh.
//
// usage: faiss_aq DIR kind ntrain ntest beam threads [reps] [lsq 0|1 (default 1)]
// For each quantizer: training seconds, encoding seconds of the test set
// (median of reps, wall and process CPU), MSE per vector (decoded in double).
// "rq-lqcb" encodes with FAISS's beam search using lq's codebooks, so the
// two encoders are compared on identical codebooks.
#include <faiss/impl/LocalSearchQuantizer.h>
#include <faiss/impl/ResidualQuantizer.h>
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <string>
#include <vector>

static std::vector<float> read_f32(const std::string &path, size_t n)
{
    std::vector<float> v(n);
    FILE *f = std::fopen(path.c_str(), "rb");
    if (!f || std::fread(v.data(), sizeof(float), n, f) != n) {
        std::fprintf(stderr, "cannot read %s\n", path.c_str());
        std::exit(2);
    }
    std::fclose(f);
    return v;
}

static double mse(const faiss::AdditiveQuantizer &q, const std::vector<uint8_t> &codes,
                  const std::vector<float> &x, size_t n)
{
    std::vector<float> y(n * 8);
    q.decode(codes.data(), y.data(), n);
    double s = 0;
    for (size_t i = 0; i < n * 8; i++) s += ((double)x[i] - y[i]) * ((double)x[i] - y[i]);
    return s / (double)n;
}

static void report(const char *name, const char *kind, faiss::AdditiveQuantizer &q,
                   const std::vector<float> &xte, size_t ntest, size_t ntrain, int beam,
                   int threads, int reps, double train_s)
{
    std::vector<uint8_t> codes(ntest * q.code_size);
    std::vector<double> w, c;
    for (int r = 0; r < reps; r++) {
        auto t0 = std::chrono::steady_clock::now();
        std::clock_t c0 = std::clock();
        q.compute_codes(xte.data(), codes.data(), ntest);
        std::clock_t c1 = std::clock();
        auto t1 = std::chrono::steady_clock::now();
        w.push_back(std::chrono::duration<double>(t1 - t0).count());
        c.push_back((double)(c1 - c0) / CLOCKS_PER_SEC);
    }
    std::sort(w.begin(), w.end());
    std::sort(c.begin(), c.end());
    std::printf("{\"bench\":\"faiss_aq\",\"method\":\"%s\",\"data\":\"%s\",\"M\":2,\"B\":8,"
                "\"ntrain\":%zu,\"ntest\":%zu,\"beam\":%d,\"threads\":%d,\"train_seconds\":%.4f,"
                "\"mse_test\":%.9g,\"encode_seconds_median\":%.5f,\"encode_cpu_seconds_median\":%.5f,"
                "\"reps\":%d}\n",
                name, kind, ntrain, ntest, beam, threads, train_s, mse(q, codes, xte, ntest),
                w[w.size() / 2], c[c.size() / 2], reps);
    std::fflush(stdout);
}

int main(int argc, char **argv)
{
    if (argc < 7 || argc > 9) {
        std::fprintf(stderr, "usage: %s DIR kind ntrain ntest beam threads [reps] [lsq]\n", argv[0]);
        return 2;
    }
    std::string dir = argv[1], kind = argv[2];
    size_t ntrain = std::strtoull(argv[3], nullptr, 10), ntest = std::strtoull(argv[4], nullptr, 10);
    int beam = std::atoi(argv[5]), threads = std::atoi(argv[6]);
    int reps = argc >= 8 ? std::atoi(argv[7]) : 3;
    bool with_lsq = argc == 9 ? std::atoi(argv[8]) != 0 : true;
    if (reps < 1) reps = 1;
    omp_set_num_threads(threads);
    std::vector<float> xtr = read_f32(dir + "/train_" + kind + ".f32", ntrain * 8);
    std::vector<float> xte = read_f32(dir + "/test_" + kind + ".f32", ntest * 8);
    std::vector<float> lqcb = read_f32(dir + "/codebooks_" + kind + ".f32", 2 * 256 * 8);

    for (int lut = 0; lut < 2; lut++) {
        faiss::ResidualQuantizer rq(8, std::vector<size_t>{8, 8});
        rq.max_beam_size = beam;
        rq.use_beam_LUT = lut;
        rq.verbose = false;
        auto t0 = std::chrono::steady_clock::now();
        rq.train(ntrain, xtr.data());
        double tt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        report(lut ? "rq-lut" : "rq", kind.c_str(), rq, xte, ntest, ntrain, beam, threads, reps, tt);
        // the same encoder on lq's codebooks
        rq.codebooks = lqcb;
        rq.compute_codebook_tables();
        report(lut ? "rq-lut-lqcb" : "rq-lqcb", kind.c_str(), rq, xte, ntest, ntrain, beam, threads,
               reps, 0.0);
    }
    if (with_lsq) {
        faiss::LocalSearchQuantizer lsq(8, 2, 8);
        lsq.verbose = false;
        auto t0 = std::chrono::steady_clock::now();
        lsq.train(ntrain, xtr.data());
        double tt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        report("lsq", kind.c_str(), lsq, xte, ntest, ntrain, beam, threads, reps, tt);
    }
    return 0;
}
