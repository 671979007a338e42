// Declarations of the gloo types that torch's c10d headers name; see rendezvous/store.h.
#pragma once

#include <gloo/context.h>
