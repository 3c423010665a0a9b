# nnlua - build, dependencies, tests, tutorial and benchmarks.
#   make            build build/libnnlua.so and lua/nnlua/cdef.lua
#   make deps       install the missing Debian packages (apt-get)
#   make test       run every spec; the last line is "N passed, N failed"
#   make test SANITIZE=1   the same under AddressSanitizer + UBSan
#   make tutorial   install, build and run tutorials/by_examples.lua headless
#   make bench      run the benchmark suite
#   make cuda       build build/libnnlua_cuda.so (needs nvcc)
#   make cuda-emu   build build/libnnlua_cuda_emu.so: test-only CPU emulation of the CUDA/cuBLAS/cuDNN code (g++)

CC      ?= gcc
PKGS    := hdf5 openblas
BUILD   ?= build
SANITIZE ?= 0

PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)
ifeq ($(strip $(PKG_LIBS)),)
PKG_CFLAGS := -I/usr/include/hdf5/serial -I/usr/include/x86_64-linux-gnu/openblas-openmp
PKG_LIBS   := -L/usr/lib/x86_64-linux-gnu/hdf5/serial -lhdf5 -lopenblas
endif

CFLAGS  ?= -O2
# Kernel loops vectorize with the dynamic cost model; -fno-trapping-math (the engine never
# enables floating-point traps) lets the branch-free math (tanh, clamps) if-convert. Neither
# changes results. Portable: no -march, OpenBLAS picks its kernels at run time.
CFLAGS  += -fvect-cost-model=dynamic -fno-trapping-math
CFLAGS  += -std=c11 -D_POSIX_C_SOURCE=200809L -Wall -Wextra -fPIC -fvisibility=default \
           -Icore/include -Icore/src $(PKG_CFLAGS) -fopenmp
LDLIBS  := $(PKG_LIBS) -lm -fopenmp

ifeq ($(SANITIZE),1)
BUILD   := build-san
CFLAGS  += -fsanitize=address,undefined -fno-omit-frame-pointer -g -O1
LDLIBS  += -fsanitize=address,undefined
endif

SRCS := $(wildcard core/src/*.c) $(wildcard core/functions/*.c) $(wildcard core/solvers/*.c)
OBJS := $(patsubst %.c,$(BUILD)/obj/%.o,$(SRCS))
LIB  := $(BUILD)/libnnlua.so
CDEF := lua/nnlua/cdef.lua
CUDA_CDEF := lua/nnlua/cuda_cdef.lua
HDRS := $(wildcard core/include/*.h core/src/*.h core/functions/*.h core/functions/*.def core/solvers/*.h)

all: $(LIB) $(CDEF) $(CUDA_CDEF)

$(BUILD)/obj/%.o: %.c $(HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

# Libraries are linked to a temporary name and renamed: a process that has the old one
# loaded (a spec running meanwhile) keeps its mapping instead of reading a half-written file.
$(LIB): $(OBJS)
	$(CC) -shared -Wl,-z,nodelete -o $@.tmp $(OBJS) $(LDLIBS) && mv -f $@.tmp $@

# The FFI declarations are the marked region of a public header, copied verbatim
# (core/include/nnlua.h -> cdef.lua; cuda/nnlua_cuda.h -> cuda_cdef.lua).

$(CDEF): core/include/nnlua.h scripts/gen_cdef.sh
	sh scripts/gen_cdef.sh $< $@

$(CUDA_CDEF): cuda/nnlua_cuda.h scripts/gen_cdef.sh
	sh scripts/gen_cdef.sh $< $@

DEBIAN_PKGS := luajit libluajit-5.1-dev libopenblas-openmp-dev libhdf5-dev hdf5-tools libreadline-dev tmux \
               gnuplot-nox lua-busted luarocks pkg-config gcc make
deps:
	@missing=""; for p in $(DEBIAN_PKGS); do \
	  if [ $$p = gnuplot-nox ] && command -v gnuplot >/dev/null 2>&1; then continue; fi; \
	  dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing; \
	else echo "all Debian packages present"; fi

test: deps all
	@SANITIZE=$(SANITIZE) sh spec/run.sh

tutorial: deps all
	NNLUA_PLOT=png ./scripts/nnlua tutorials/by_examples.lua

# The API reference page, generated from the registry (spec/reference_spec.lua checks it).
reference: all
	./scripts/nnlua scripts/gen_reference.lua lua/nnlua/REFERENCE.md

bench: all $(BUILD)/fma_peak
	./scripts/nnlua bench/run.lua $(BENCH_ARGS)

# The cores' FMA peak, the benchmark's ceiling row (bench only: not part of the library).
$(BUILD)/fma_peak: bench/fma_peak.c
	@mkdir -p $(dir $@)
	$(CC) -O2 -Wall -Wextra -fopenmp $< -o $@

clean:
	rm -rf build build-san $(CDEF)

.PHONY: all deps test tutorial bench clean

# ---- the REPL's line editing (optional) -------------------------------------------------
# scripts/readline_shim.c -> $(BUILD)/libnnlua_readline.so, a tiny Lua C module linked
# against GNU readline (make READLINE=edit: libedit). Built only when the headers exist;
# without it the REPL reads plain lines.
READLINE ?= readline
RL_LIB   := $(BUILD)/libnnlua_readline.so
LUAJIT_CFLAGS := $(shell pkg-config --cflags luajit 2>/dev/null || echo -I/usr/include/luajit-2.1)
ifeq ($(READLINE),edit)
RL_CFLAGS := -DNLRL_LIBEDIT
RL_LIBS   := -ledit
RL_HEADER := editline/readline.h
else
RL_CFLAGS :=
RL_LIBS   := -lreadline
RL_HEADER := readline/readline.h
endif
RL_OK := $(shell $(CC) $(LUAJIT_CFLAGS) -E -include stdio.h -include $(RL_HEADER) -include lua.h \
                 -x c /dev/null >/dev/null 2>&1 && echo yes)

all: readline
readline: $(if $(RL_OK),$(RL_LIB),readline-missing)
$(RL_LIB): scripts/readline_shim.c
	@mkdir -p $(dir $@)
	$(CC) -O2 -std=c11 -Wall -Wextra -fPIC -shared $(LUAJIT_CFLAGS) $(RL_CFLAGS) -o $@ $< $(RL_LIBS)
readline-missing:
	@echo "note: $(RL_HEADER) or LuaJIT's lua.h not found; the REPL will read plain lines" \
	      "(make deps installs libreadline-dev and libluajit-5.1-dev)"

# ---- LuaRocks: rockspec/nnlua-scm-1.rockspec runs `make rock` and `make rock-install` ----
# LuaRocks passes ROCK_CFLAGS (its CFLAGS, used like a user's CFLAGS), INST_LUADIR and
# INST_BINDIR. The shared libraries go next to the Lua modules (where lua/nnlua/lib.lua
# looks), the tutorials into nnlua/tutorials/.
rock:
	$(if $(ROCK_CFLAGS),CFLAGS="$(ROCK_CFLAGS)") $(MAKE) -j$$(nproc 2>/dev/null || echo 2) all
rock-install:
	@test -n "$(INST_LUADIR)" && test -n "$(INST_BINDIR)" || \
	  { echo "rock-install: INST_LUADIR and INST_BINDIR must be given (LuaRocks does)"; exit 1; }
	mkdir -p "$(INST_LUADIR)/nnlua/tutorials/data" "$(INST_BINDIR)"
	cd lua && find nnlua -name '*.lua' -exec install -D -m 644 {} "$(INST_LUADIR)"/{} \;
	install -m 755 $(LIB) "$(INST_LUADIR)/nnlua/"
	for f in $(RL_LIB) $(BUILD)/libnnlua_cuda.so; do \
	  if [ -f $$f ]; then install -m 755 $$f "$(INST_LUADIR)/nnlua/"; fi; done
	install -m 644 tutorials/*.lua "$(INST_LUADIR)/nnlua/tutorials/"
	install -m 644 tutorials/data/* "$(INST_LUADIR)/nnlua/tutorials/data/"
	install -m 755 scripts/nnlua "$(INST_BINDIR)/nnlua"

.PHONY: readline readline-missing rock rock-install

# ---- the CUDA/cuDNN backend (optional): make cuda -> $(BUILD)/libnnlua_cuda.so -----------
# cuda/*.cu (and *.c) compiled with nvcc against the engine's headers, linked against
# $(BUILD)/libnnlua.so, the CUDA runtime, cuBLAS and cuDNN, with rpaths to $ORIGIN and the
# toolkit. Loaded only when a cuda/cudnn context is asked for (lua/nnlua/cuda.lua); the CPU
# build never needs the toolkit. CUDA_ARCH picks the GPUs (default: code for sm_80 (A100,
# and sm_86/89 run it) and sm_90 (H100/H200), plus sm_90 PTX that newer GPUs compile when
# loading); CUDA_WERROR=1 turns warnings into errors. About 40 s on two cores.
CUDA_HOME  ?= /usr/local/cuda
NVCC       ?= $(shell command -v nvcc 2>/dev/null || echo $(CUDA_HOME)/bin/nvcc)
CUDA_ARCH  ?= -gencode arch=compute_80,code=sm_80 -gencode arch=compute_90,code=[sm_90,compute_90]
comma      := ,
# the GPU generations the kernels are compiled for (sm_80 sm_90), named in device.cu's
# "cannot run this build's kernels" error; the raw flags where they name none
CUDA_ARCH_SM   = $(sort $(filter sm_%,$(subst ], ,$(subst [, ,$(subst =, ,$(subst $(comma), ,$(CUDA_ARCH)))))))
CUDA_ARCH_STR  = $(or $(CUDA_ARCH_SM),$(subst $(comma), ,$(CUDA_ARCH)))
CUDA_WERROR ?= 0
NVCCFLAGS  ?= -O2
NVCC_ALL   := $(NVCCFLAGS) -std=c++17 $(CUDA_ARCH) -Xcompiler -fPIC,-Wall,-Wextra,-Wno-unused-function \
              -Icore/include -Icore/src -Icore/functions -I$(CUDA_HOME)/include \
              -DNLC_ARCH_STR='"$(CUDA_ARCH_STR)"' $(if $(filter 1,$(CUDA_WERROR)),-Werror all-warnings,)
CUDA_LIB   := $(BUILD)/libnnlua_cuda.so
CUDA_SRCS  := $(wildcard cuda/*.cu) $(wildcard cuda/*.c)
CUDA_OBJS  := $(patsubst %,$(BUILD)/obj/%.o,$(CUDA_SRCS))
CUDA_HDRS  := $(HDRS) $(wildcard cuda/*.cuh cuda/*.h)

cuda: $(CUDA_LIB)

cuda-check:
	@command -v $(NVCC) >/dev/null 2>&1 || { echo "make cuda: nvcc not found ($(NVCC)); set CUDA_HOME or NVCC"; exit 1; }
	@test -f $(CUDA_HOME)/include/cudnn.h || { echo "make cuda: cuDNN headers not found in $(CUDA_HOME)/include"; exit 1; }
$(CUDA_OBJS): | cuda-check

$(BUILD)/obj/cuda/%.cu.o: cuda/%.cu $(CUDA_HDRS)
	@mkdir -p $(dir $@)
	$(NVCC) $(NVCC_ALL) -c $< -o $@

$(BUILD)/obj/cuda/%.c.o: cuda/%.c $(CUDA_HDRS)
	@mkdir -p $(dir $@)
	$(NVCC) $(NVCC_ALL) -x cu -c $< -o $@

$(CUDA_LIB): $(CUDA_OBJS) $(LIB)
	$(NVCC) -shared $(CUDA_ARCH) -o $@.tmp $(CUDA_OBJS) -L$(BUILD) -lnnlua -L$(CUDA_HOME)/lib64 \
	  -lcudart -lcublas -lcudnn -Xlinker -rpath,'$$ORIGIN' -Xlinker -rpath,$(CUDA_HOME)/lib64 \
	  -Xlinker -z,nodelete -Xlinker --no-undefined && mv -f $@.tmp $@

.PHONY: cuda cuda-check

# ---- make cuda-emu: TEST-ONLY CPU emulation of the backend's files, the CUDA kernels run as fibers, cuBLAS and cuDNN emulated by plain loops (g++ only; cuda/emu/, spec/cuda_spec.lua with NNLUA_CUDA_EMU=1)
# Every cuda/*.cu, device.cu included, compiled unchanged over an emulated CUDA runtime
# (cuda/emu/emu_device.cpp: the kernel scheduler, devices and memory on the host),
# cuBLAS (cublas_emu.cpp) and cuDNN (cudnn_emu*.cpp); loaded like the real library by
# lua/nnlua/cuda.lua when NNLUA_CUDA_LIB names it.
LUAJIT         ?= luajit
CUDA_EMU_LIB   := $(BUILD)/libnnlua_cuda_emu.so
CUDA_EMU_FILES := $(basename $(notdir $(wildcard cuda/*.cu)))
CUDA_EMU_MAINS := emu_device cublas_emu cudnn_emu cudnn_emu_conv cudnn_emu_ops
CUDA_EMU_OBJS  := $(patsubst %,$(BUILD)/obj/cuda-emu/%.o,$(CUDA_EMU_FILES) $(CUDA_EMU_MAINS))
CUDA_EMU_FLAGS := -O2 -g -std=c++17 -fPIC -ffp-contract=off -Wall -Wextra -Wno-unused-function -Wno-unused-parameter \
                  -Icuda/emu -Icuda -Icore/include -Icore/src -Icore/functions

cuda-emu: $(CUDA_EMU_LIB)

$(BUILD)/obj/cuda-emu/%.cpp: cuda/%.cu cuda/emu/launches.lua
	@mkdir -p $(dir $@)
	$(LUAJIT) cuda/emu/launches.lua $< $@

$(BUILD)/obj/cuda-emu/%.o: $(BUILD)/obj/cuda-emu/%.cpp $(CUDA_HDRS) $(wildcard cuda/emu/*.h)
	$(CXX) $(CUDA_EMU_FLAGS) -c $< -o $@

$(patsubst %,$(BUILD)/obj/cuda-emu/%.o,$(CUDA_EMU_MAINS)): $(BUILD)/obj/cuda-emu/%.o: cuda/emu/%.cpp $(CUDA_HDRS) $(wildcard cuda/emu/*.h)
	@mkdir -p $(dir $@)
	$(CXX) $(CUDA_EMU_FLAGS) -c $< -o $@

$(CUDA_EMU_LIB): $(CUDA_EMU_OBJS) $(LIB)
	$(CXX) -shared -o $@.tmp $(CUDA_EMU_OBJS) -L$(BUILD) -lnnlua -Wl,-rpath,'$$ORIGIN' -Wl,-Bsymbolic -Wl,--no-undefined \
	  && mv -f $@.tmp $@

.PRECIOUS: $(BUILD)/obj/cuda-emu/%.cpp
.PHONY: cuda-emu
