-- nnlua.ext_utils: NNabla's extension helper: get_extension_context('cpu'|'cuda'|'cudnn', {device_id = 0}).
local context = require 'nnlua.context'
return { get_extension_context = context.get_extension_context }
