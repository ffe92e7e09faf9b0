// Builds the precompiled header once; other targets reuse it.
