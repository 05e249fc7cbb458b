-- msal.lazy: stand-ins that require their module on the first field read.
local lazy = require("msal.lazy")

describe("msal.lazy.require", function()
  local NAME = "msal_lazy_spec_probe"
  local loads
  before_each(function()
    loads = 0
    package.loaded[NAME] = nil
    package.preload[NAME] = function()
      loads = loads + 1
      return { f = function() return "f" end, g = 2, hidden = 3 }
    end
  end)
  after_each(function()
    package.preload[NAME], package.loaded[NAME] = nil, nil
  end)

  it("requires the module on the first field read, once, then reads through", function()
    local m = lazy.require(NAME)
    assert.equal(0, loads)
    assert.equal("f", m.f())
    assert.equal(2, m.g)
    assert.equal(3, m.hidden)
    assert.is_nil(m.missing)
    assert.equal(1, loads)
    assert.equal(package.loaded[NAME].f, m.f)
  end)

  it("shows only the fields it names, without loading for the others", function()
    local m = lazy.require(NAME, { "f", "g" })
    assert.is_nil(m.hidden)
    assert.equal(0, loads)
    assert.equal(2, m.g)
    assert.equal(1, loads)
    assert.equal(package.loaded[NAME].f, m.f)
    assert.is_nil(m.hidden)
  end)

  it("raises require's error when the module is missing, at the first read", function()
    local m = lazy.require("msal_lazy_spec_no_such_module")
    assert.has_error(function() return m.x end)
  end)
end)
