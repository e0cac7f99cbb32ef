#include "attention_kernel.hpp"

#include "levattn/attention/backward.hpp"
#include "levattn/attention/exact.hpp"
#include "levattn/core/error.hpp"

namespace levattn::vit {

namespace {

torch::Tensor dense(const torch::Tensor& t) { return t.detach().to(torch::kFloat).contiguous(); }

ConstHeadsF heads(const torch::Tensor& t) {
  return ConstHeadsF(t.data_ptr<float>(), t.size(0), t.size(1), t.size(2), t.size(3));
}

HeadsF mutable_heads(torch::Tensor& t) {
  return HeadsF(t.data_ptr<float>(), t.size(0), t.size(1), t.size(2), t.size(3));
}

AttentionOptions softmax_options(double scale) {
  AttentionOptions o;
  o.scale = scale;
  return o;
}

class SoftmaxAttention : public torch::autograd::Function<SoftmaxAttention> {
 public:
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& q, const torch::Tensor& k,
                               const torch::Tensor& v, double scale) {
    const torch::Tensor qc = dense(q), kc = dense(k), vc = dense(v);
    torch::Tensor out = torch::empty({qc.size(0), qc.size(1), qc.size(2), vc.size(3)}, torch::kFloat);
    torch::Tensor lse = torch::empty({qc.size(0), qc.size(1), qc.size(2)}, torch::kDouble);
    attend_exact(heads(qc), heads(kc), heads(vc), softmax_options(scale), mutable_heads(out), lse.data_ptr<double>());
    ctx->save_for_backward({qc, kc, vc, out, lse});
    ctx->saved_data["scale"] = scale;
    return out;
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad_outputs) {
    const auto saved = ctx->get_saved_variables();
    const torch::Tensor &q = saved[0], &k = saved[1], &v = saved[2], &out = saved[3], &lse = saved[4];
    const torch::Tensor dout = dense(grad_outputs[0]);
    torch::Tensor dq = torch::empty_like(q), dk = torch::empty_like(k), dv = torch::empty_like(v);
    attend_exact_backward(heads(q), heads(k), heads(v), heads(out), lse.data_ptr<double>(), heads(dout),
                          softmax_options(ctx->saved_data["scale"].toDouble()), mutable_heads(dq), mutable_heads(dk),
                          mutable_heads(dv));
    return {dq, dk, dv, torch::Tensor()};
  }
};

}  // namespace

Kernel parse_kernel(const std::string& name) {
  if (name == "torch") return Kernel::torch;
  if (name == "levattn") return Kernel::levattn;
  throw Error(ErrorKind::bad_input, "attention kernel must be torch or levattn, got '" + name + "'");
}

std::string kernel_name(Kernel kernel) { return kernel == Kernel::torch ? "torch" : "levattn"; }

torch::Tensor levattn_softmax_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                        double scale) {
  require(q.dim() == 4 && k.dim() == 4 && v.dim() == 4, "attention kernel: q, k and v must be (B, H, n, d)");
  require(q.device().is_cpu() && k.device().is_cpu() && v.device().is_cpu(),
          "attention kernel: levattn's kernels run on CPU tensors only");
  return SoftmaxAttention::apply(q, k, v, scale);
}

}  // namespace levattn::vit
