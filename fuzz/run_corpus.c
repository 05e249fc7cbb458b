/* A stand-in for libFuzzer's driver where only gcc is at hand: feeds each
 * file (directories: each file in them) to LLVMFuzzerTestOneInput, or with
 * `-random N [seed]` N generated inputs, biased towards base64url text and
 * dots so they reach past the first checks. Build line: fuzz/fuzz_jwt.c. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int run_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    uint8_t *data;
    long n;
    if (f == NULL || fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0) {
        perror(path);
        if (f)
            fclose(f);
        return 1;
    }
    data = malloc(n ? (size_t)n : 1);
    if (data == NULL || fread(data, 1, (size_t)n, f) != (size_t)n) {
        perror(path);
        free(data);
        fclose(f);
        return 1;
    }
    fclose(f);
    LLVMFuzzerTestOneInput(data, (size_t)n);
    free(data);
    return 0;
}

static int run_path(const char *path)
{
    struct stat st;
    DIR *d;
    struct dirent *e;
    int bad = 0;
    if (stat(path, &st) != 0) {
        perror(path);
        return 1;
    }
    if (!S_ISDIR(st.st_mode))
        return run_file(path);
    if ((d = opendir(path)) == NULL) {
        perror(path);
        return 1;
    }
    while ((e = readdir(d)) != NULL) {
        size_t len = strlen(path) + strlen(e->d_name) + 2;
        char *sub;
        if (e->d_name[0] == '.')
            continue;
        if ((sub = malloc(len)) == NULL)
            abort();
        snprintf(sub, len, "%s/%s", path, e->d_name);
        bad |= run_path(sub);
        free(sub);
    }
    closedir(d);
    return bad;
}

static uint64_t rng;

static uint64_t next(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static void run_random(unsigned long count)
{
    static const char chars[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_..........==+/";
    uint8_t buf[512];
    unsigned long i;
    for (i = 0; i < count; i++) {
        size_t n = next() % sizeof buf, j;
        int raw = next() % 8 == 0;
        for (j = 0; j < n; j++)
            buf[j] = raw ? (uint8_t)next() : (uint8_t)chars[next() % (sizeof chars - 1)];
        LLVMFuzzerTestOneInput(buf, n);
    }
}

int main(int argc, char **argv)
{
    int i, bad = 0;
    if (argc >= 3 && strcmp(argv[1], "-random") == 0) {
        rng = argc >= 4 ? strtoull(argv[3], NULL, 10) : 88172645463325252ULL;
        if (rng == 0)
            rng = 1;
        run_random(strtoul(argv[2], NULL, 10));
        printf("%s random inputs: ok\n", argv[2]);
        return 0;
    }
    if (argc < 2) {
        fprintf(stderr, "usage: %s FILE|DIR... | -random N [seed]\n", argv[0]);
        return 2;
    }
    for (i = 1; i < argc; i++)
        bad |= run_path(argv[i]);
    if (!bad)
        printf("%d path(s): ok\n", argc - 1);
    return bad;
}
