/* tok_synth_text.c: the built-in English text that synthetic tokenizers learn their merges from:
 * sentences made from templates and small word lists by a seeded generator, so that frequent words
 * (" the", " of", " city", " Paris", " Tower", ...) become single tokens once the vocabulary allows. */
#include "tok_synth.h"

#include <stdio.h>
#include <string.h>

static const char *CITIES[] = {"Paris", "London", "Rome", "Berlin", "Madrid", "Vienna", "Tokyo", "Cairo",
                               "Lisbon", "Athens", "Moscow", "Dublin", "Oslo", "Prague", "Warsaw", "Ottawa"};
static const char *COUNTRIES[] = {"France", "England", "Italy", "Germany", "Spain", "Austria", "Japan", "Egypt",
                                  "Portugal", "Greece", "Russia", "Ireland", "Norway", "Czechia", "Poland", "Canada"};
static const char *LANDMARKS[] = {"Eiffel Tower", "Big Ben", "Colosseum", "Brandenburg Gate", "Royal Palace",
                                  "Opera House", "Tokyo Tower", "Great Pyramid", "Old Bridge", "Parthenon",
                                  "Red Square", "Trinity College", "Harbour Tower", "Charles Bridge", "Old Town",
                                  "Parliament Hill"};
static const char *NOUNS[] = {"river", "museum", "street", "market", "station", "garden", "school", "church",
                              "bridge", "castle", "library", "park", "house", "tower", "square", "harbour",
                              "king", "queen", "writer", "painter", "student", "teacher", "doctor", "farmer"};
static const char *ADJS[] = {"old", "new", "large", "small", "famous", "quiet", "busy", "beautiful", "ancient",
                             "modern", "green", "long", "tall", "narrow", "bright", "cold"};
static const char *VERBS[] = {"visited", "painted", "described", "built", "opened", "crossed", "studied", "found",
                              "left", "loved", "named", "saw"};
static const char *PEOPLE[] = {"Marie", "John", "Anna", "Peter", "Lucia", "Hans", "Yuki", "Omar", "Elena", "Nikos"};

static uint64_t next(uint64_t *s) {
    /* splitmix64 */
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

#define PICK(arr, s) (arr[next(s) % (sizeof arr / sizeof arr[0])])

int tok_synth_text(uint64_t seed, size_t n_sentences, tok_buf *out) {
    uint64_t s = seed * 0x2545F4914F6CDD1DULL + 1;
    char line[512];
    for (size_t i = 0; i < n_sentences; i++) {
        size_t k = (size_t)(next(&s) % 10);
        size_t c = (size_t)(next(&s) % (sizeof CITIES / sizeof CITIES[0]));
        switch (k) {
        case 0: snprintf(line, sizeof line, "The %s is in the city of %s.", LANDMARKS[c], CITIES[c]); break;
        case 1: snprintf(line, sizeof line, "%s is the capital of %s.", CITIES[c], COUNTRIES[c]); break;
        case 2: snprintf(line, sizeof line, "The capital of %s is %s.", COUNTRIES[c], CITIES[c]); break;
        case 3:
            snprintf(line, sizeof line, "The %s %s of %s is near the %s.", PICK(ADJS, &s), PICK(NOUNS, &s), CITIES[c],
                     LANDMARKS[c]);
            break;
        case 4:
            snprintf(line, sizeof line, "%s %s the %s %s in %s.", PICK(PEOPLE, &s), PICK(VERBS, &s), PICK(ADJS, &s),
                     PICK(NOUNS, &s), CITIES[c]);
            break;
        case 5:
            snprintf(line, sizeof line, "In %s, the %s was %s by a %s.", CITIES[c], PICK(NOUNS, &s), PICK(VERBS, &s),
                     PICK(NOUNS, &s));
            break;
        case 6:
            snprintf(line, sizeof line, "The city of %s has a %s %s and the %s.", CITIES[c], PICK(ADJS, &s),
                     PICK(NOUNS, &s), LANDMARKS[c]);
            break;
        case 7:
            snprintf(line, sizeof line, "It is %d years old, and the %s is %d meters tall.", (int)(next(&s) % 900) + 10,
                     LANDMARKS[c], (int)(next(&s) % 300) + 20);
            break;
        case 8:
            snprintf(line, sizeof line, "%s said that the %s in %s was the most %s of all.", PICK(PEOPLE, &s),
                     PICK(NOUNS, &s), COUNTRIES[c], PICK(ADJS, &s));
            break;
        default:
            snprintf(line, sizeof line, "People in %s speak about the %s and the %s every day.", COUNTRIES[c],
                     PICK(NOUNS, &s), PICK(NOUNS, &s));
            break;
        }
        if ((i && tok_buf_append(out, (i % 7 == 0) ? "\n" : " ", 1)) || tok_buf_append(out, line, strlen(line))) return -1;
    }
    return 0;
}
