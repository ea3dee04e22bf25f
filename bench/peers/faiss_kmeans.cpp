// FAISS peer for `lq bench kmeans`: faiss::Clustering on the same points and
// from the same initial centroids (x.f32 / init.f32 written by
// `lq bench kmeans --export DIR`). Built and run only by faiss_kmeans.sh.
//
// usage: faiss_kmeans DIR n d k iters threads max_points_per_centroid [reps]
//   max_points_per_centroid: FAISS subsamples the training set to
//   k * max_points_per_centroid points when n is larger (default 256 in
//   faiss::ClusteringParameters); pass 0 to disable subsampling (n / k + 1).
// Reports the training time (median of reps runs, default 3), FAISS's own objective of
// the last iteration (sum of squared distances of that iteration's
// assignment, float), and the inertia of the final centroids over all n
// points, recomputed in double from a final exact assignment (IndexFlatL2).
#include <faiss/Clustering.h>
#include <faiss/IndexFlat.h>
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <ctime>
#include <cstdio>
#include <cstdlib>
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

int main(int argc, char **argv)
{
    if (argc != 8 && argc != 9) {
        std::fprintf(stderr, "usage: %s DIR n d k iters threads max_points_per_centroid [reps]\n",
                     argv[0]);
        return 2;
    }
    std::string dir = argv[1];
    size_t n = std::strtoull(argv[2], nullptr, 10), d = std::strtoull(argv[3], nullptr, 10);
    size_t k = std::strtoull(argv[4], nullptr, 10);
    int iters = std::atoi(argv[5]), threads = std::atoi(argv[6]);
    long mppc = std::atol(argv[7]);
    int reps = argc == 9 ? std::atoi(argv[8]) : 3;
    if (reps < 1) reps = 1;
    bool sub = mppc > 0;
    if (!sub) mppc = (long)(n / k + 1);
    omp_set_num_threads(threads);
    std::vector<float> x = read_f32(dir + "/x.f32", n * d), init = read_f32(dir + "/init.f32", k * d);
    std::vector<double> times, cpu;
    std::vector<float> cent;
    float obj = 0;
    for (int rep = 0; rep < reps; rep++) {
        faiss::ClusteringParameters cp;
        cp.niter = iters;
        cp.nredo = 1;
        cp.max_points_per_centroid = (int)mppc;
        cp.min_points_per_centroid = 1;
        cp.seed = 1234;
        faiss::Clustering clus((int)d, (int)k, cp);
        clus.centroids = init; // used as the initialisation (not frozen)
        faiss::IndexFlatL2 index((faiss::Index::idx_t)d);
        auto t0 = std::chrono::steady_clock::now();
        std::clock_t c0 = std::clock();
        clus.train((faiss::Index::idx_t)n, x.data(), index);
        std::clock_t c1 = std::clock();
        auto t1 = std::chrono::steady_clock::now();
        times.push_back(std::chrono::duration<double>(t1 - t0).count());
        cpu.push_back((double)(c1 - c0) / CLOCKS_PER_SEC);
        cent = clus.centroids;
        obj = clus.iteration_stats.back().obj;
    }
    std::sort(times.begin(), times.end());
    std::sort(cpu.begin(), cpu.end());
    // final inertia over all points, in double
    faiss::IndexFlatL2 idx((faiss::Index::idx_t)d);
    idx.add((faiss::Index::idx_t)k, cent.data());
    std::vector<float> dist(n);
    std::vector<faiss::Index::idx_t> lab(n);
    idx.search((faiss::Index::idx_t)n, x.data(), 1, dist.data(), lab.data());
    double inertia = 0;
    for (size_t i = 0; i < n; i++) {
        double s = 0;
        for (size_t j = 0; j < d; j++) {
            double t = (double)x[i * d + j] - (double)cent[(size_t)lab[i] * d + j];
            s += t * t;
        }
        inertia += s;
    }
    std::printf("{\"peer\":\"faiss\",\"n\":%zu,\"d\":%zu,\"k\":%zu,\"iters\":%d,\"threads\":%d,"
                "\"subsampling\":%s,\"train_points\":%zu,\"seconds_median\":%.6f,\"cpu_seconds_median\":%.6f,"
                "\"obj_last_iter\":%.9g,\"inertia_final\":%.12g}\n",
                n, d, k, iters, threads, sub ? "true" : "false",
                std::min(n, (size_t)mppc * k), times[times.size() / 2], cpu[cpu.size() / 2], (double)obj, inertia);
    return 0;
}
