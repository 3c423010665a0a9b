-- nnlua.solvers (S): NNabla's solvers. A solver keeps an ordered list of parameters
-- (set_parameters) and updates them with a C kernel. As in NNabla, parameters whose
-- gradient is still lazily zero (no gradient since zero_grad) are skipped by update,
-- weight_decay, clip_grad_by_norm and scale_grad, and their step count t is not advanced.
local lib = require 'nnlua.lib'
local parameter = require 'nnlua.parameter'
local Variable = require 'nnlua.variable'
local C = lib.C

local S = {}

local Solver = {}
Solver.__index = Solver
S.Solver = Solver

local function new_solver(class, name, lr)
  if type(lr) ~= 'number' then error('S.' .. name .. ': learning rate must be a number, got ' .. type(lr), 3) end
  return setmetatable({ name = name, lr = lr, params = {}, names = {}, states = {} }, class)
end

-- params: the dictionary from nn.get_parameters(), or a list of Variables.
function Solver:set_parameters(params, reset, retain_state)
  if reset == nil then reset = true end
  if reset then self.params, self.names, self.states = {}, {}, {} end
  local function add(name, v)
    if not Variable.is(v) then error(("%s:set_parameters: '%s' is not a Variable"):format(self.name, tostring(name)), 4) end
    if not self.states[name] then
      self.names[#self.names + 1] = name
      self.params[#self.params + 1] = v
      self.states[name] = { t = 0 }
    end
  end
  if parameter.is_dict(params) then
    for name, v in params:items() do add(name, v) end
  elseif type(params) == 'table' then
    for i, v in ipairs(params) do add('param' .. i, v) end
  else
    error(self.name .. ':set_parameters: expected the dictionary from nn.get_parameters() or a list of Variables', 2)
  end
end

function Solver:get_parameters() return self.params end

function Solver:zero_grad()
  for _, p in ipairs(self.params) do C.nl_array_zero(C.nl_var_grad(p)) end
end

local function has_grad(p) return C.nl_array_zeroing(C.nl_var_grad(p)) == 0 end

-- g <- g + decay * w, for parameters that received a gradient.
function Solver:weight_decay(decay)
  if decay == 0 then return end
  for _, p in ipairs(self.params) do
    if has_grad(p) then lib.check(C.nl_weight_decay(C.nl_var_data(p), C.nl_var_grad(p), decay), self.name .. ':weight_decay') end
  end
end

function Solver:clip_grad_by_norm(clip_norm)
  for _, p in ipairs(self.params) do
    if has_grad(p) then
      local g = C.nl_var_grad(p)
      local norm = math.sqrt(C.nl_sum_squares(g))
      if norm > clip_norm then lib.check(C.nl_scale(g, clip_norm / norm), self.name .. ':clip_grad_by_norm') end
    end
  end
end

function Solver:scale_grad(scale)
  for _, p in ipairs(self.params) do
    if has_grad(p) then lib.check(C.nl_scale(C.nl_var_grad(p), scale), self.name .. ':scale_grad') end
  end
end

function Solver:check_inf_or_nan_grad()
  for _, p in ipairs(self.params) do
    if has_grad(p) and C.nl_has_inf_or_nan(C.nl_var_grad(p)) ~= 0 then return true end
  end
  return false
end

function Solver:learning_rate() return self.lr end
function Solver:set_learning_rate(lr)
  if type(lr) ~= 'number' then error(self.name .. ':set_learning_rate: expected a number', 2) end
  self.lr = lr
end

function Solver:update()
  for i, p in ipairs(self.params) do
    if has_grad(p) then
      local st = self.states[self.names[i]]
      st.t = st.t + 1
      self:update_one(p, st)
    end
  end
end

function Solver:info()
  return ('%s(lr=%g, %d parameters)'):format(self.name, self.lr, #self.params)
end
Solver.__tostring = Solver.info

-- ---- Sgd: w <- w - lr * g --------------------------------------------------------------
local Sgd = setmetatable({}, { __index = Solver })
Sgd.__index = Sgd
Sgd.__tostring = Solver.info
function Sgd:update_one(p)
  lib.check(C.nl_sgd_update(C.nl_var_data(p), C.nl_var_grad(p), self.lr), 'Sgd:update')
end
function S.Sgd(lr)
  return new_solver(Sgd, 'Sgd', lr == nil and 1e-3 or lr)
end

return S
