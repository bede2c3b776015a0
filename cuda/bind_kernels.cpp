// fastmlp._cuda's kernel functions: the same names, arguments and results as fastmlp._core's
// (cpp/bind_*.cpp), NumPy arrays in and out. Each call copies its inputs to the GPU, runs the
// launcher of cuda/kernels.h and copies the results back, so these exist to prove the CUDA
// kernels equal fastmlp.reference (tests/test_cuda.py), not for speed: training keeps its data
// on the device (cuda/device_trainer.*). Checks first (the same as _core's, shared through
// cpp/bind_util.h and cpp/bind_optim_slots.h), then the GIL is released for the device work.
#include <pybind11/stl.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "bind_optim_slots.h"
#include "bind_kernel_checks.h"
#include "bind_util.h"
#include "common.cuh"
#include "kernels.h"

namespace fastmlp {
namespace cuda {
namespace {

MathMode mode_from(const std::string& precision) {
  if (precision == "fp32") return MathMode::fp32;
  if (precision == "tf32") return MathMode::tf32;
  throw py::value_error("precision: expected 'tf32' or 'fp32', got '" + precision + "'");
}

// Device copies of host arrays, uploaded on construction; all calls share the per-thread stream.
struct Upload {
  DeviceBuffer<float> d;
  Upload(const py::array& a, cudaStream_t s) { d.upload(cptr(a), static_cast<size_t>(a.size()), s); }
  const float* get() const { return d.data(); }
};

cudaStream_t stream() { return cudaStreamPerThread; }

void finish(cudaStream_t s) { FASTMLP_CUDA_CHECK(cudaStreamSynchronize(s)); }

py::tuple elementwise_loss(py::array a, py::array b, const char* a_name, const char* b_name,
                           bool bce) {
  const std::vector<py::ssize_t> shape = check_elementwise_pair(a, b, a_name, b_name);
  auto grad = new_f32(shape);
  double loss = 0.0;
  float* g = mptr(grad);
  const std::ptrdiff_t n = a.size();
  {
    py::gil_scoped_release nogil;
    const cudaStream_t s = stream();
    Upload da(a, s), db(b, s);
    DeviceBuffer<float> dg(static_cast<size_t>(n));
    DeviceBuffer<double> dl(1);
    // One row of n elements: the mean over all elements, as _core's.
    if (bce) binary_cross_entropy(s, 1, n, da.get(), db.get(), dg.data(), dl.data());
    else mse(s, 1, n, da.get(), db.get(), dg.data(), dl.data());
    dg.download(g, static_cast<size_t>(n), s);
    dl.download(&loss, 1, s);
    finish(s);
  }
  return py::make_tuple(loss, grad);
}

// The flat device image of an optimizer's lists: every slot's param, grad and states packed
// end to end (segment i at offsets[i]), uploaded, stepped by one multi-tensor launch, and the
// params and states copied back into the caller's arrays.
struct FlatSlots {
  std::vector<Segment> segs;
  std::int64_t total = 0;
  DeviceBuffer<float> param, grad, state0, state1;
  DeviceBuffer<std::int64_t> chunk_begin;
  DeviceBuffer<std::int32_t> chunk_len;
  DeviceBuffer<double> work;
  ChunkTable table;
  bool has0 = false, has1 = false;

  FlatSlots(const std::vector<OptimSlot>& slots, cudaStream_t s) {
    for (const OptimSlot& sl : slots) {
      segs.push_back({total, sl.n});
      total += sl.n;
      has0 = has0 || sl.state0;
      has1 = has1 || sl.state1;
    }
    const size_t n = static_cast<size_t>(total);
    param.resize(n);
    grad.resize(n);
    if (has0) state0.resize(n);
    if (has1) state1.resize(n);
    for (size_t i = 0; i < slots.size(); ++i) {
      const size_t off = static_cast<size_t>(segs[i].begin), k = static_cast<size_t>(segs[i].n);
      copy_in(param.data() + off, slots[i].param, k, s);
      copy_in(grad.data() + off, slots[i].grad, k, s);
      if (slots[i].state0) copy_in(state0.data() + off, slots[i].state0, k, s);
      if (slots[i].state1) copy_in(state1.data() + off, slots[i].state1, k, s);
    }
    const HostChunks hc = make_chunks(segs);
    chunk_begin.upload(hc.begin.data(), hc.begin.size(), s);
    chunk_len.upload(hc.len.data(), hc.len.size(), s);
    table = {chunk_begin.data(), chunk_len.data(), static_cast<int>(hc.begin.size())};
    work.resize(static_cast<size_t>(optim_work_doubles(table.count)));
  }
  OptimBuffers buffers() {
    return {param.data(), grad.data(), has0 ? state0.data() : nullptr,
            has1 ? state1.data() : nullptr};
  }
  // Copies the updated params and states back; returns the global gradient norm.
  double finish_step(const std::vector<OptimSlot>& slots, cudaStream_t s) {
    for (size_t i = 0; i < slots.size(); ++i) {
      const size_t off = static_cast<size_t>(segs[i].begin), k = static_cast<size_t>(segs[i].n);
      copy_out(slots[i].param, param.data() + off, k, s);
      if (slots[i].state0) copy_out(slots[i].state0, state0.data() + off, k, s);
      if (slots[i].state1) copy_out(slots[i].state1, state1.data() + off, k, s);
    }
    double norm = 0.0;
    work.download(&norm, 1, s);
    finish(s);
    return norm;
  }
  static void copy_in(float* dst, const float* src, size_t n, cudaStream_t s) {
    if (n) FASTMLP_CUDA_CHECK(cudaMemcpyAsync(dst, src, n * sizeof(float), cudaMemcpyHostToDevice, s));
  }
  static void copy_out(float* dst, const float* src, size_t n, cudaStream_t s) {
    if (n) FASTMLP_CUDA_CHECK(cudaMemcpyAsync(dst, src, n * sizeof(float), cudaMemcpyDeviceToHost, s));
  }
};

ClipConfig clip_of(std::optional<double> value, std::optional<double> norm) {
  ClipConfig c;
  c.has_value = value.has_value();
  c.value = value.value_or(0.0);
  c.has_norm = norm.has_value();
  c.norm = norm.value_or(0.0);
  return c;
}

}  // namespace

void bind_kernels(py::module_& m) {
  m.def("dense_forward",
        [](py::array x, py::array W, py::array b, const std::string& activation, float alpha,
           const std::string& precision) {
          const auto [B, I, O] = check_dense_forward(x, W, b);
          const Act act = act_from_name(activation);
          const MathMode mode = mode_from(precision);
          auto y = new_f32({B, O});
          auto z = new_f32({B, O});
          float *yp = mptr(y), *zp = mptr(z);
          {
            py::gil_scoped_release nogil;
            const cudaStream_t s = stream();
            Upload dx(x, s), dW(W, s), db(b, s);
            DeviceBuffer<float> dy(static_cast<size_t>(B * O)), dz(static_cast<size_t>(B * O));
            dense_forward(s, mode, B, I, O, dx.get(), dW.get(), db.get(), act, alpha, dy.data(),
                          dz.data());
            dy.download(yp, static_cast<size_t>(B * O), s);
            dz.download(zp, static_cast<size_t>(B * O), s);
            finish(s);
          }
          return py::make_tuple(y, z);
        },
        py::arg("x"), py::arg("W"), py::arg("b"), py::arg("activation"), py::arg("alpha"),
        py::arg("precision") = "fp32");
  m.def("dense_backward",
        [](py::array dy, py::array x, py::array W, py::array z, const std::string& activation,
           float alpha, bool need_dx, const std::string& precision) {
          const auto [B, I, O] = check_dense_backward(dy, x, W, z);
          const Act act = act_from_name(activation);
          const MathMode mode = mode_from(precision);
          auto dW = new_f32({I, O});
          auto db = new_f32({O});
          py::object dx_obj = py::none();
          float* dxp = nullptr;
          if (need_dx) {
            auto dxa = new_f32({B, I});
            dxp = mptr(dxa);
            dx_obj = dxa;
          }
          float *dWp = mptr(dW), *dbp = mptr(db);
          {
            py::gil_scoped_release nogil;
            const cudaStream_t s = stream();
            Upload ddy(dy, s), dx_in(x, s), dWt(W, s), dz(z, s);
            DeviceBuffer<float> gW(static_cast<size_t>(I * O)), gb(static_cast<size_t>(O)), gx;
            if (need_dx) gx.resize(static_cast<size_t>(B * I));
            dense_backward(s, mode, B, I, O, ddy.get(), dx_in.get(), dWt.get(), dz.get(), act,
                           alpha, need_dx ? gx.data() : nullptr, gW.data(), gb.data());
            gW.download(dWp, static_cast<size_t>(I * O), s);
            gb.download(dbp, static_cast<size_t>(O), s);
            if (need_dx) gx.download(dxp, static_cast<size_t>(B * I), s);
            finish(s);
          }
          return py::make_tuple(dx_obj, dW, db);
        },
        py::arg("dy"), py::arg("x"), py::arg("W"), py::arg("z"), py::arg("activation"),
        py::arg("alpha"), py::arg("need_dx"), py::arg("precision") = "fp32");

  m.def("batchnorm_forward",
        [](py::array x, py::array gamma, py::array beta, py::array running_mean,
           py::array running_var, bool training, float momentum, float eps) {
          const auto [B, F] =
              check_batchnorm_forward(x, gamma, beta, running_mean, running_var, training);
          auto y = new_f32({B, F});
          auto mean = new_f32({F});
          auto inv_std = new_f32({F});
          float *yp = mptr(y), *mp = mptr(mean), *ip = mptr(inv_std);
          float *rm = mptr(running_mean), *rv = mptr(running_var);
          {
            py::gil_scoped_release nogil;
            const cudaStream_t s = stream();
            Upload dx(x, s), dg(gamma, s), dbeta(beta, s), drm(running_mean, s), drv(running_var, s);
            DeviceBuffer<float> dyb(static_cast<size_t>(B * F)), dm(static_cast<size_t>(F)),
                di(static_cast<size_t>(F));
            batchnorm_forward(s, B, F, dx.get(), dg.get(), dbeta.get(), drm.d.data(),
                              drv.d.data(), training, momentum, eps, dyb.data(), dm.data(),
                              di.data());
            dyb.download(yp, static_cast<size_t>(B * F), s);
            dm.download(mp, static_cast<size_t>(F), s);
            di.download(ip, static_cast<size_t>(F), s);
            drm.d.download(rm, static_cast<size_t>(F), s);
            drv.d.download(rv, static_cast<size_t>(F), s);
            finish(s);
          }
          return py::make_tuple(y, mean, inv_std);
        });
  m.def("batchnorm_backward",
        [](py::array dy, py::array x, py::array gamma, py::array mean, py::array inv_std) {
          const auto [B, F] = check_batchnorm_backward(dy, x, gamma, mean, inv_std);
          auto dx = new_f32({B, F});
          auto dgamma = new_f32({F});
          auto dbeta = new_f32({F});
          float *dxp = mptr(dx), *dgp = mptr(dgamma), *dbp = mptr(dbeta);
          {
            py::gil_scoped_release nogil;
            const cudaStream_t s = stream();
            Upload ddy(dy, s), dxin(x, s), dg(gamma, s), dm(mean, s), di(inv_std, s);
            DeviceBuffer<float> gx(static_cast<size_t>(B * F)), gg(static_cast<size_t>(F)),
                gbeta(static_cast<size_t>(F));
            batchnorm_backward(s, B, F, ddy.get(), dxin.get(), dg.get(), dm.get(), di.get(),
                               gx.data(), gg.data(), gbeta.data());
            gx.download(dxp, static_cast<size_t>(B * F), s);
            gg.download(dgp, static_cast<size_t>(F), s);
            gbeta.download(dbp, static_cast<size_t>(F), s);
            finish(s);
          }
          return py::make_tuple(dx, dgamma, dbeta);
        });

  m.def("softmax_cross_entropy", [](py::array logits, py::array labels) {
    check_f32(logits, "logits", {-1, -1});
    const py::ssize_t B = logits.shape(0), C = logits.shape(1);
    const std::int64_t* lab = check_labels(labels, B, C);
    auto dlogits = new_f32({B, C});
    float* g = mptr(dlogits);
    double loss = 0.0;
    {
      py::gil_scoped_release nogil;
      const cudaStream_t s = stream();
      Upload dl(logits, s);
      DeviceBuffer<std::int64_t> dlab;
      dlab.upload(lab, static_cast<size_t>(B), s);
      DeviceBuffer<float> dg(static_cast<size_t>(B * C));
      DeviceBuffer<double> dloss(1);
      softmax_cross_entropy(s, B, C, dl.get(), dlab.data(), dg.data(), dloss.data());
      dg.download(g, static_cast<size_t>(B * C), s);
      dloss.download(&loss, 1, s);
      finish(s);
    }
    return py::make_tuple(loss, dlogits);
  });
  m.def("mse", [](py::array pred, py::array target) {
    return elementwise_loss(pred, target, "pred", "target", false);
  });
  m.def("binary_cross_entropy", [](py::array logits, py::array targets) {
    return elementwise_loss(logits, targets, "logits", "targets", true);
  });

  m.def("sgd_step",
        [](py::list params, py::list grads, py::object velocities, double lr, double momentum,
           bool nesterov, double weight_decay, std::optional<double> clip_value,
           std::optional<double> clip_norm) {
          if (momentum != 0.0 && velocities.is_none())
            throw py::value_error("velocities: required when momentum > 0");
          Slots sl = make_slots(params, grads, velocities, "velocities", py::none(), "",
                                /*state0_used=*/momentum != 0.0);
          py::gil_scoped_release nogil;
          const cudaStream_t s = stream();
          FlatSlots f(sl.slots, s);
          sgd_step(s, f.buffers(), f.table, lr, momentum, nesterov, weight_decay,
                   clip_of(clip_value, clip_norm), f.work.data());
          return f.finish_step(sl.slots, s);
        });
  m.def("adagrad_step",
        [](py::list params, py::list grads, py::object accumulators, double lr, double eps,
           double weight_decay, std::optional<double> clip_value,
           std::optional<double> clip_norm) {
          Slots sl = make_slots(params, grads, as_list(accumulators, "accumulators"),
                                "accumulators", py::none(), "");
          py::gil_scoped_release nogil;
          const cudaStream_t s = stream();
          FlatSlots f(sl.slots, s);
          adagrad_step(s, f.buffers(), f.table, lr, eps, weight_decay,
                       clip_of(clip_value, clip_norm), f.work.data());
          return f.finish_step(sl.slots, s);
        });
  m.def("rmsprop_step",
        [](py::list params, py::list grads, py::object mean_squares, double lr, double rho,
           double eps, double weight_decay, std::optional<double> clip_value,
           std::optional<double> clip_norm) {
          Slots sl = make_slots(params, grads, as_list(mean_squares, "mean_squares"),
                                "mean_squares", py::none(), "");
          py::gil_scoped_release nogil;
          const cudaStream_t s = stream();
          FlatSlots f(sl.slots, s);
          rmsprop_step(s, f.buffers(), f.table, lr, rho, eps, weight_decay,
                       clip_of(clip_value, clip_norm), f.work.data());
          return f.finish_step(sl.slots, s);
        });
  m.def("adam_step",
        [](py::list params, py::list grads, py::object m_list, py::object v_list, long long step,
           double lr, double beta1, double beta2, double eps, double weight_decay, bool decoupled,
           std::optional<double> clip_value, std::optional<double> clip_norm) {
          if (step < 1) throw py::value_error("step: expected an integer >= 1");
          Slots sl = make_slots(params, grads, as_list(m_list, "m"), "m", as_list(v_list, "v"), "v");
          py::gil_scoped_release nogil;
          const cudaStream_t s = stream();
          FlatSlots f(sl.slots, s);
          adam_step(s, f.buffers(), f.table, step, lr, beta1, beta2, eps, weight_decay, decoupled,
                    clip_of(clip_value, clip_norm), f.work.data());
          return f.finish_step(sl.slots, s);
        });

  // The fully fused narrow-network forward pass, for tests: layers = [(in, out, w_offset,
  // b_offset, activation, alpha), ...] into the flat params; X (n, in_0) -> (n, out_last).
  m.def("fused_mlp_forward",
        [](const py::list& layers, py::array params, py::array X, const std::string& precision) {
          check_f32(params, "params", {-1});
          std::vector<FusedLayer> ls;
          for (const auto& item : layers) {
            auto t = item.cast<py::tuple>();
            FusedLayer l{t[0].cast<std::ptrdiff_t>(), t[1].cast<std::ptrdiff_t>(),
                         t[2].cast<std::ptrdiff_t>(), t[3].cast<std::ptrdiff_t>(),
                         act_from_name(t[4].cast<std::string>()), t[5].cast<float>()};
            if (l.in < 1 || l.out < 1 || l.w < 0 || l.b < 0 ||
                l.w + l.in * l.out > params.shape(0) || l.b + l.out > params.shape(0))
              throw py::value_error("layers: a layer lies outside params");
            if (!ls.empty() && ls.back().out != l.in)
              throw py::value_error("layers: each layer's 'in' must equal the previous 'out'");
            ls.push_back(l);
          }
          if (ls.empty()) throw py::value_error("layers: expected at least one layer");
          if (!fused_mlp_supported(ls))
            throw py::value_error("layers: not a narrow network (every width <= " +
                                  std::to_string(kFusedMaxWidth) + ", at most 16 layers)");
          check_f32(X, "X", {-1, ls.front().in});
          const MathMode mode = mode_from(precision);
          const py::ssize_t n = X.shape(0), O = ls.back().out;
          auto out = new_f32({n, O});
          float* op = mptr(out);
          {
            py::gil_scoped_release nogil;
            const cudaStream_t s = stream();
            Upload dp(params, s), dx(X, s);
            DeviceBuffer<float> dout(static_cast<size_t>(n * O));
            fused_mlp_forward(s, mode, ls, dp.get(), n, dx.get(), dout.data());
            dout.download(op, static_cast<size_t>(n * O), s);
            finish(s);
          }
          return out;
        },
        py::arg("layers"), py::arg("params"), py::arg("X"), py::arg("precision") = "fp32");
}

}  // namespace cuda
}  // namespace fastmlp
