// fofa/fofa.hpp — the one #include for inference users: core, kernels, layers, the cloud
// model (ForwardOfa: adapt/score/rerank), the device runtime (DeviceModel/DeviceSession) and
// the file formats (.fofa, safetensors, config JSON; these need nlohmann-json).
//
//   #include <fofa/fofa.hpp>
//   fofa::DeviceModel m = fofa::io::load_device("session.fofa");
//   fofa::DeviceSession s(m);
//   fofa::RankingView r = s.rerank();
// Training (fofa/train/*) and autograd are separate includes.
#pragma once

#include "fofa/core/error.hpp"
#include "fofa/core/tensor.hpp"
#include "fofa/core/workspace.hpp"
#include "fofa/kernels/kernels.hpp"
#include "fofa/model/config.hpp"
#include "fofa/model/weights.hpp"
#include "fofa/model/init.hpp"
#include "fofa/model/plan.hpp"
#include "fofa/model/forward_ofa.hpp"
#include "fofa/model/device_model.hpp"
#include "fofa/io/crc32.hpp"
#include "fofa/io/fofa_file.hpp"
#include "fofa/io/safetensors.hpp"
#include "fofa/io/config_json.hpp"
#include "fofa/io/model_file.hpp"
#include "fofa/io/device_file.hpp"
